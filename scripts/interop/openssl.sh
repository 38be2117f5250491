#!/usr/bin/env bash
# scripts/interop/openssl.sh — interop row "openssl": OpenSSL 3 with the libp11
# engine (libengine-pkcs11-openssl) uses p11kms keys; every result is checked by
# plain openssl (no engine) or curl against public keys pkcs11-tool exported.
#
# Covers, with an EC P-256 and an RSA-2048 token key: req -new (CSR) and -x509,
# dgst -sign, pkeyutl -sign, pkeyutl -decrypt (RSA-OAEP and PKCS#1 v1.5), cms -sign,
# a TLS server (s_server) completing TLS 1.2 and 1.3 handshakes with s_client and
# curl, and 200 handshakes against one server process that then exits cleanly.
#
# pkcs11-provider (OpenSSL 3's native PKCS#11 provider) is not packaged in this
# Debian release, so only the engine is covered.
#
# Environment:
#   P11KMS_MODULE        the module (default <repo>/target/release/libp11kms.so)
#   P11KMS_INTEROP_KEEP  1 keeps the temporary directory
#
# Prints "==> [n] step" per step, runs every step even after a failure, and ends
# with "interop openssl: N passed, M failed"; exits 1 when M > 0.
set -euo pipefail

ROW="openssl"
# shellcheck source=scripts/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/../common.sh"
# shellcheck source=scripts/interop/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

p11kms_ensure pkcs11-tool=opensc openssl=openssl engine=libengine-pkcs11-openssl \
    curl=curl timeout=coreutils

MODULE="${P11KMS_MODULE:-$(p11kms_default_module)}"
if [[ ! -f "$MODULE" ]]; then
    echo "interop $ROW: module not found: $MODULE (build it or set P11KMS_MODULE)" >&2
    exit 1
fi
MODULE="$(cd "$(dirname "$MODULE")" && pwd)/$(basename "$MODULE")"
ENGINE="$(p11kms_engine_path)"

SO_PIN="87654321"
PIN="123456"
TOKEN="interop"
T=60         # seconds any one tool run may take
HANDSHAKES=200

TMP="$(mktemp -d "${TMPDIR:-/tmp}/p11kms-interop-openssl.XXXXXX")"
# Servers started in steps (subshells) record their PIDs here for the exit trap.
PIDS="$TMP/server.pids"
: >"$PIDS"
cleanup() {
    local pid
    while read -r pid; do
        kill "$pid" 2>/dev/null || true
    done <"$PIDS"
    if [[ "${P11KMS_INTEROP_KEEP:-0}" == 1 ]]; then
        echo "interop $ROW: kept $TMP"
    else
        rm -rf "$TMP"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

interop_conf "$TMP" "$TOKEN"

# The engine's configuration; given only to the commands that use the token
# (OPENSSL_CONF per command), so the checks run plain openssl.
OSSL_CONF="$TMP/openssl-engine.cnf"
cat >"$OSSL_CONF" <<CONF
openssl_conf = openssl_init

[openssl_init]
engines = engine_section

[engine_section]
pkcs11 = pkcs11_section

[pkcs11_section]
engine_id = pkcs11
dynamic_path = $ENGINE
MODULE_PATH = $MODULE
init = 0

[req]
distinguished_name = req_dn
x509_extensions = v3_ca

[req_dn]

[v3_ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth, emailProtection
subjectKeyIdentifier = hash
subjectAltName = DNS:localhost, IP:127.0.0.1
CONF

echo "interop $ROW: module $MODULE"
echo "interop $ROW: engine ${ENGINE:-none}"
echo "interop $ROW: work dir $TMP"
echo "interop $ROW: pkcs11-provider is not packaged in this Debian: not covered"
cd "$TMP"

# ---- harness -----------------------------------------------------------------

# Show a command, run it with a time bound and no stdin, indent its output.
run() {
    local cmd
    printf -v cmd '%q ' "$@"
    printf '    $ %s\n' "${cmd% }"
    timeout "$T" "$@" </dev/null 2>&1 | sed 's/^/    /'
}
# A crash (signal) or abort message in a run's output or status.
crashed() { # STATUS FILE
    [[ $1 -ge 124 ]] || grep -Eiq 'segmentation|core dumped|abort|panick|double free|stack smash' "$2"
}
# eng ARGS...: openssl with the engine configuration; its stderr is checked for a
# crash, and a non-zero exit fails.
eng() {
    local cmd rc=0
    printf -v cmd '%q ' "$@"
    printf '    $ OPENSSL_CONF=engine.cnf openssl %s\n' "${cmd% }"
    OPENSSL_CONF="$OSSL_CONF" timeout "$T" openssl "$@" </dev/null >eng.out 2>eng.err || rc=$?
    grep -v '^Engine "pkcs11" set\.$' eng.err | sed 's/^/    /' || true
    sed 's/^/    /' eng.out | head -20
    if crashed "$rc" eng.err; then
        fail "openssl crashed or aborted (exit $rc)"
    fi
    [[ $rc -eq 0 ]] || fail "openssl exited $rc"
}
p11() { run pkcs11-tool --module "$MODULE" "$@"; }
p11u() { p11 --token-label "$TOKEN" --login --pin "$PIN" "$@"; }
# Same public key? (PEM files)
same_pub() { cmp -s <(openssl pkey -pubin -in "$1" -outform DER) <(openssl pkey -pubin -in "$2" -outform DER); }

uri() { printf 'pkcs11:token=%s;object=%s;type=private;pin-value=%s' "$TOKEN" "$1" "$PIN"; }
EC_URI="$(uri ec1)"
RSA_URI="$(uri rsa1)"
DEC_URI="$(uri rsadec)"
# On gcp a Cloud KMS version has one algorithm: rsa1 is RSA_SIGN_PKCS1_2048_SHA256, and
# what needs RSA-PSS (PSS signatures, TLS 1.3) uses rsapss, an RSA_SIGN_PSS_2048_SHA256
# version (pkcs11-tool --allowed-mechanisms naming only PSS, checked over REST).
PSS_URI="$(uri rsapss)"

printf 'p11kms interop: openssl signs over the lazy dog\n' >data.txt
openssl dgst -sha256 -binary -out data.sha256 data.txt

# ---- token setup ----------------------------------------------------------------

s_setup() {
    p11 --init-token --label "$TOKEN" --so-pin "$SO_PIN"
    p11 --token-label "$TOKEN" --login --login-type so --so-pin "$SO_PIN" --init-pin --pin "$PIN"
    p11u --keypairgen --key-type EC:prime256v1 --id 01 --label ec1
    p11u --keypairgen --key-type rsa:2048 --id 02 --label rsa1
    # A decryption key: a KMS key has one usage (SIGN_VERIFY or ENCRYPT_DECRYPT).
    p11u --keypairgen --key-type rsa:2048 --id 03 --label rsadec --usage-decrypt
    local k id keys=(ec1:01 rsa1:02 rsadec:03)
    if on_backend gcp; then
        p11u --keypairgen --key-type rsa:2048 --id 04 --label rsapss \
            --allowed-mechanisms RSA-PKCS-PSS,SHA256-RSA-PKCS-PSS
        [[ "$(gcp_algorithm rsapss)" == RSA_SIGN_PSS_2048_SHA256 ]] ||
            fail "rsapss is not an RSA_SIGN_PSS_2048_SHA256 version: $(gcp_algorithm rsapss)"
        keys+=(rsapss:04)
    fi
    for k in "${keys[@]}"; do
        id=${k#*:} k=${k%:*}
        p11kms_read_pubkey --id "$id" "$k.der" timeout "$T" pkcs11-tool --module "$MODULE" --token-label "$TOKEN"
        openssl pkey -pubin -inform DER -in "$k.der" -out "$k.pem"
        if on_backend aws gcp; then
            # A KMS key: GetPublicKey (boto3 or REST, not the module) gives the same key.
            kms_pubkey "$k" "$k-kms.pem"
            same_pub "$k.pem" "$k-kms.pem" || fail "$k: the token's public key is not KMS's"
        fi
    done
    openssl pkey -pubin -in ec1.pem -noout -text | grep -q prime256v1 || fail "ec1 is not P-256"
    openssl pkey -pubin -in rsa1.pem -noout -text | grep -q '(2048 bit)' || fail "rsa1 is not 2048 bits"
}
step "init token, user PIN, EC P-256 (ec1), RSA-2048 (rsa1, rsadec) keys; export public keys (pkcs11-tool)" s_setup

s_engine() {
    [[ -n "$ENGINE" ]] || fail "no libp11 engine found"
    eng engine -t -c pkcs11
    grep -q 'available' eng.out || fail "the engine does not report itself available"
}
step "the libp11 engine loads the module (openssl engine -t)" s_engine

# ---- certificates ------------------------------------------------------------

s_csr() {
    local k
    for k in ec1 rsa1; do
        eng req -new -engine pkcs11 -keyform engine -key "$(uri "$k")" -sha256 \
            -subj "/CN=p11kms interop $k" -out "$k.csr"
        run openssl req -verify -in "$k.csr" -noout
        openssl req -in "$k.csr" -noout -pubkey >"$k-csr-pub.pem"
        same_pub "$k-csr-pub.pem" "$k.pem" || fail "the $k CSR does not carry $k's public key"
    done
}
step "openssl req -new (CSR) with EC and RSA keys; openssl req -verify" s_csr

s_x509() {
    local k
    for k in ec1 rsa1; do
        eng req -new -x509 -engine pkcs11 -keyform engine -key "$(uri "$k")" -sha256 \
            -subj "/CN=localhost" -days 2 -out "$k-cert.pem"
        run openssl verify -check_ss_sig -CAfile "$k-cert.pem" "$k-cert.pem"
        openssl x509 -in "$k-cert.pem" -noout -pubkey >"$k-cert-pub.pem"
        same_pub "$k-cert-pub.pem" "$k.pem" || fail "the $k certificate does not carry $k's public key"
    done
}
s_x509_pss() {
    if ! on_backend gcp; then
        echo "    (rsapss is made on gcp only; rsa1 signs PSS here)"
        return 0
    fi
    eng req -new -x509 -engine pkcs11 -keyform engine -key "$PSS_URI" -sha256 \
        -sigopt rsa_padding_mode:pss -sigopt rsa_pss_saltlen:digest \
        -subj "/CN=localhost" -days 2 -out rsapss-cert.pem
    run openssl verify -check_ss_sig -CAfile rsapss-cert.pem rsapss-cert.pem
    openssl x509 -in rsapss-cert.pem -noout -text | grep -q 'Signature Algorithm: rsassaPss' ||
        fail "the rsapss certificate is not signed with RSA-PSS"
    openssl x509 -in rsapss-cert.pem -noout -pubkey >rsapss-cert-pub.pem
    same_pub rsapss-cert-pub.pem rsapss.pem || fail "the rsapss certificate does not carry rsapss's key"
}
step "openssl req -x509 self-signed with EC and RSA keys; openssl verify" s_x509
step "gcp: openssl req -x509 self-signed RSA-PSS with the RSA-PSS key rsapss; openssl verify" s_x509_pss

# ---- signatures and decryption ----------------------------------------------------

s_dgst() {
    eng dgst -engine pkcs11 -keyform engine -sha256 -sign "$EC_URI" -out ec-dgst.sig data.txt
    run openssl dgst -sha256 -verify ec1.pem -signature ec-dgst.sig data.txt
    eng dgst -engine pkcs11 -keyform engine -sha256 -sign "$RSA_URI" -out rsa-dgst.sig data.txt
    run openssl dgst -sha256 -verify rsa1.pem -signature rsa-dgst.sig data.txt
    if on_backend gcp; then
        # PSS on the PKCS#1 v1.5 version: refused (libp11 shows the module's
        # CKR_MECHANISM_INVALID as "Mechanism invalid"); the PSS version signs, SHA-256
        # (its one hash).
        refused 'Mechanism invalid' eng dgst -engine pkcs11 -keyform engine -sha384 -sign "$RSA_URI" \
            -sigopt rsa_padding_mode:pss -sigopt rsa_pss_saltlen:48 -out rsa-pss-dgst.sig data.txt
        eng dgst -engine pkcs11 -keyform engine -sha256 -sign "$PSS_URI" -sigopt rsa_padding_mode:pss \
            -sigopt rsa_pss_saltlen:32 -out rsa-pss-dgst.sig data.txt
        run openssl dgst -sha256 -verify rsapss.pem -sigopt rsa_padding_mode:pss -sigopt rsa_pss_saltlen:32 \
            -signature rsa-pss-dgst.sig data.txt
        return 0
    fi
    eng dgst -engine pkcs11 -keyform engine -sha384 -sign "$RSA_URI" -sigopt rsa_padding_mode:pss \
        -sigopt rsa_pss_saltlen:48 -out rsa-pss-dgst.sig data.txt
    run openssl dgst -sha384 -verify rsa1.pem -sigopt rsa_padding_mode:pss -sigopt rsa_pss_saltlen:48 \
        -signature rsa-pss-dgst.sig data.txt
}
step "openssl dgst -sha256 -sign (EC, RSA) and -sha384 RSA-PSS (gcp: -sha256 on rsapss); openssl dgst -verify" s_dgst

s_pkeyutl_sign() {
    eng pkeyutl -engine pkcs11 -keyform engine -inkey "$EC_URI" -sign -in data.sha256 -out ec-pk.sig
    run openssl pkeyutl -verify -pubin -inkey ec1.pem -in data.sha256 -sigfile ec-pk.sig
    eng pkeyutl -engine pkcs11 -keyform engine -inkey "$RSA_URI" -sign -in data.sha256 \
        -pkeyopt digest:sha256 -out rsa-pk.sig
    run openssl pkeyutl -verify -pubin -inkey rsa1.pem -in data.sha256 -sigfile rsa-pk.sig \
        -pkeyopt digest:sha256
    local pss=rsa1 pss_uri=$RSA_URI
    if on_backend gcp; then
        # PSS on the PKCS#1 v1.5 version is refused; the PSS version signs.
        refused 'Mechanism invalid' eng pkeyutl -engine pkcs11 -keyform engine -inkey "$RSA_URI" -sign \
            -in data.sha256 -pkeyopt digest:sha256 -pkeyopt rsa_padding_mode:pss -pkeyopt rsa_pss_saltlen:32 \
            -out rsa-pk-pss.sig
        pss=rsapss pss_uri=$PSS_URI
    fi
    eng pkeyutl -engine pkcs11 -keyform engine -inkey "$pss_uri" -sign -in data.sha256 \
        -pkeyopt digest:sha256 -pkeyopt rsa_padding_mode:pss -pkeyopt rsa_pss_saltlen:32 -out rsa-pk-pss.sig
    run openssl pkeyutl -verify -pubin -inkey "$pss.pem" -in data.sha256 -sigfile rsa-pk-pss.sig \
        -pkeyopt digest:sha256 -pkeyopt rsa_padding_mode:pss -pkeyopt rsa_pss_saltlen:32
}
step "openssl pkeyutl -sign (ECDSA, RSA PKCS#1, RSA-PSS); openssl pkeyutl -verify" s_pkeyutl_sign

s_decrypt() {
    printf 'a session key, 32 bytes long...!' >secret.bin
    openssl pkeyutl -encrypt -pubin -inkey rsadec.pem -in secret.bin -out oaep.enc \
        -pkeyopt rsa_padding_mode:oaep -pkeyopt rsa_oaep_md:sha256
    eng pkeyutl -engine pkcs11 -keyform engine -inkey "$DEC_URI" -decrypt -in oaep.enc -out oaep.dec \
        -pkeyopt rsa_padding_mode:oaep -pkeyopt rsa_oaep_md:sha256
    cmp secret.bin oaep.dec || fail "RSA-OAEP-SHA256 decryption differs"
    openssl pkeyutl -encrypt -pubin -inkey rsadec.pem -in secret.bin -out pkcs1.enc
    if skip_on "aws gcp" "PKCS#1 v1.5 decryption: KMS has none (not possible); the module refuses it"; then
        # libp11 reports the module's CKR_MECHANISM_INVALID as "Mechanism invalid".
        refused 'Mechanism invalid' eng pkeyutl -engine pkcs11 -keyform engine -inkey "$DEC_URI" \
            -decrypt -in pkcs1.enc -out pkcs1.dec
        return 0
    fi
    eng pkeyutl -engine pkcs11 -keyform engine -inkey "$DEC_URI" -decrypt -in pkcs1.enc -out pkcs1.dec
    cmp secret.bin pkcs1.dec || fail "RSA PKCS#1 v1.5 decryption differs"
}
step "openssl pkeyutl -decrypt RSA-OAEP-SHA256 and PKCS#1 v1.5 (ciphertext by plain openssl)" s_decrypt

s_cms() {
    local k
    for k in ec1 rsa1; do
        eng cms -sign -engine pkcs11 -keyform engine -inkey "$(uri "$k")" -signer "$k-cert.pem" \
            -in data.txt -binary -nodetach -outform PEM -out "$k.p7m"
        run openssl cms -verify -CAfile "$k-cert.pem" -in "$k.p7m" -inform PEM -binary -out "$k.p7m.out"
        cmp data.txt "$k.p7m.out" || fail "the $k CMS content differs"
    done
    local salt=() pss=rsa1 pss_uri=$RSA_URI
    if on_backend gcp; then
        # PSS on the PKCS#1 v1.5 version is refused; the PSS version signs.
        refused 'Mechanism invalid' eng cms -sign -engine pkcs11 -keyform engine -inkey "$RSA_URI" \
            -signer rsa1-cert.pem -keyopt rsa_padding_mode:pss -keyopt rsa_pss_saltlen:digest \
            -in data.txt -binary -nodetach -outform PEM -out rsa1-pss.p7m
        pss=rsapss pss_uri=$PSS_URI
    fi
    if on_backend aws gcp; then
        # KMS (AWS and Cloud) signs PSS with salt = hash length only; openssl cms defaults to the
        # maximum, which the module refuses (CKR_MECHANISM_PARAM_INVALID).
        echo "    $INTEROP_BACKEND: -keyopt rsa_pss_saltlen:digest (KMS PSS salt is the hash length)"
        salt=(-keyopt rsa_pss_saltlen:digest)
    fi
    eng cms -sign -engine pkcs11 -keyform engine -inkey "$pss_uri" -signer "$pss-cert.pem" \
        -keyopt rsa_padding_mode:pss "${salt[@]}" -in data.txt -binary -nodetach -outform PEM -out rsa1-pss.p7m
    run openssl cms -verify -CAfile "$pss-cert.pem" -in rsa1-pss.p7m -inform PEM -binary -out rsa1-pss.out
    openssl cms -cmsout -print -in rsa1-pss.p7m -inform PEM | grep -q rsassaPss ||
        fail "the RSA-PSS CMS signature is not rsassaPss"
}
step "openssl cms -sign (EC, RSA, RSA-PSS) with token key + cert; openssl cms -verify -CAfile" s_cms

# ---- TLS ----------------------------------------------------------------------

# start_server NAME KEYURI CERT NACCEPT: s_server in the background on 127.0.0.1 and
# a port the kernel says is free (free_port; tried again only if another process
# took it before s_server's bind); sets PORT and SPID. Up means s_server printed
# ACCEPT and 127.0.0.1:PORT is in LISTEN state (`listening`: no probe connection,
# which -naccept would count). Output in NAME.out / NAME.err.
start_server() {
    local name="$1" i
    for _ in 1 2 3 4 5; do
        PORT=$(free_port)
        OPENSSL_CONF="$OSSL_CONF" timeout 300 openssl s_server -engine pkcs11 -keyform engine \
            -key "$2" -cert "$3" -accept "127.0.0.1:$PORT" -www -naccept "$4" \
            </dev/null >"$name.out" 2>"$name.err" &
        SPID=$!
        echo "$SPID" >>"$PIDS"
        for i in $(seq 1 300); do
            if grep -q '^ACCEPT' "$name.out" && listening "$PORT"; then
                echo "    s_server $name listening on 127.0.0.1:$PORT (pid $SPID)"
                return 0
            fi
            kill -0 "$SPID" 2>/dev/null || break
            sleep 0.1
        done
        kill "$SPID" 2>/dev/null || true
        wait "$SPID" 2>/dev/null || true
        if grep -qi 'address already in use' "$name.err"; then
            continue
        fi
        sed 's/^/    /' "$name.err"
        fail "s_server $name did not start"
    done
    fail "no free port for s_server $name"
}
# stop_server NAME: wait for a -naccept server to exit by itself; check it exited 0
# with no crash.
stop_server() {
    local rc=0 i
    for i in $(seq 1 300); do
        kill -0 "$SPID" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$SPID" 2>/dev/null; then
        kill "$SPID" 2>/dev/null || true
        fail "s_server $1 did not exit after its last connection"
    fi
    wait "$SPID" || rc=$?
    if crashed "$rc" "$1.err"; then
        sed 's/^/    /' "$1.err"
        fail "s_server $1 crashed (exit $rc)"
    fi
    [[ $rc -eq 0 ]] || fail "s_server $1 exited $rc"
    echo "    s_server $1 exited 0"
}
# handshake CAFILE OUT ARGS...: one s_client handshake; certificate verified.
# Explicit returns: it also runs where errexit is off (in an if).
handshake() {
    local ca="$1" out="$2" rc=0
    shift 2
    timeout 20 openssl s_client -connect "127.0.0.1:$PORT" -servername localhost -CAfile "$ca" \
        -verify_return_error -verify_hostname localhost "$@" </dev/null >"$out" 2>&1 || rc=$?
    if crashed "$rc" "$out"; then
        fail "s_client crashed (exit $rc)"
        return 1
    fi
    if [[ $rc -ne 0 ]]; then
        sed 's/^/    /' "$out"
        fail "s_client $* exited $rc"
        return 1
    fi
    grep -q 'Verify return code: 0 (ok)' "$out" || {
        fail "s_client did not verify the server certificate"
        return 1
    }
}

s_tls_ec() {
    start_server tls-ec "$EC_URI" ec1-cert.pem 3
    handshake ec1-cert.pem ec-12.txt -tls1_2
    grep -Eq 'Protocol *: TLSv1.2' ec-12.txt || fail "not TLS 1.2"
    grep -q 'Peer signature type: ECDSA' ec-12.txt || fail "TLS 1.2 peer signature is not ECDSA"
    handshake ec1-cert.pem ec-13.txt -tls1_3
    grep -q 'TLSv1.3' ec-13.txt || fail "not TLS 1.3"
    grep -q 'Peer signature type: ECDSA' ec-13.txt || fail "TLS 1.3 peer signature is not ECDSA"
    grep -E 'Protocol|Cipher is|Peer signature' ec-12.txt ec-13.txt | sed 's/^/    /'
    run curl -sS --max-time 20 --cacert ec1-cert.pem -o curl-ec.html "https://127.0.0.1:$PORT/"
    grep -q 's_server' curl-ec.html || fail "curl did not get s_server's page"
    stop_server tls-ec
}
step "TLS server with the EC key: s_client TLS 1.2 + 1.3 and curl complete verified handshakes" s_tls_ec

s_tls_rsa() {
    local k=rsa1 k_uri=$RSA_URI
    if on_backend gcp; then
        # TLS 1.2 with PKCS#1 v1.5 signatures on rsa1; everything that signs with PSS
        # (TLS 1.2 by default, TLS 1.3, curl) on rsapss.
        start_server tls-rsa-pkcs1 "$RSA_URI" rsa1-cert.pem 1
        handshake rsa1-cert.pem rsa-12-pkcs1.txt -tls1_2 -sigalgs RSA+SHA256
        grep -q 'Peer signature type: RSA$' rsa-12-pkcs1.txt || fail "TLS 1.2 peer signature is not RSA PKCS#1"
        grep -E 'Protocol|Cipher is|Peer signature' rsa-12-pkcs1.txt | sed 's/^/    /'
        stop_server tls-rsa-pkcs1
        k=rsapss k_uri=$PSS_URI
        start_server tls-rsa "$k_uri" "$k-cert.pem" 3
    else
        start_server tls-rsa "$k_uri" "$k-cert.pem" 4
        # TLS 1.2 with PKCS#1 v1.5 signatures, as an older client would ask.
        handshake rsa1-cert.pem rsa-12-pkcs1.txt -tls1_2 -sigalgs RSA+SHA256
        grep -q 'Peer signature type: RSA$' rsa-12-pkcs1.txt || fail "TLS 1.2 peer signature is not RSA PKCS#1"
    fi
    handshake "$k-cert.pem" rsa-12.txt -tls1_2
    grep -Eq 'Protocol *: TLSv1.2' rsa-12.txt || fail "not TLS 1.2"
    # TLS 1.3 with an RSA key needs RSA-PSS from the token.
    handshake "$k-cert.pem" rsa-13.txt -tls1_3
    grep -q 'TLSv1.3' rsa-13.txt || fail "not TLS 1.3"
    grep -q 'Peer signature type: RSA-PSS' rsa-13.txt || fail "TLS 1.3 peer signature is not RSA-PSS"
    grep -E 'Protocol|Cipher is|Peer signature' rsa-12.txt rsa-12-pkcs1.txt rsa-13.txt | sed 's/^/    /'
    run curl -sS --max-time 20 --cacert "$k-cert.pem" -o curl-rsa.html "https://127.0.0.1:$PORT/"
    grep -q 's_server' curl-rsa.html || fail "curl did not get s_server's page"
    stop_server tls-rsa
}
step "TLS server with the RSA key: TLS 1.2 (PSS and PKCS#1), TLS 1.3 (PSS) and curl" s_tls_rsa

# many NAME KEYURI CERT [ARG...]: HANDSHAKES handshakes (TLS 1.3 and 1.2 alternating,
# or s_client ARGs for all) against one s_server process, which signs once per
# handshake, then exits by itself.
many() {
    local i ok=0 bad=0 v start end
    start_server "$1" "$2" "$3" "$HANDSHAKES"
    start=$(date +%s)
    for i in $(seq 1 "$HANDSHAKES"); do
        v=(-tls1_3)
        ((i % 2)) && v=(-tls1_2)
        [[ $# -gt 3 ]] && v=("${@:4}")
        if (handshake "$3" many-client.txt "${v[@]}") >/dev/null 2>&1; then
            ok=$((ok + 1))
        else
            bad=$((bad + 1))
            if ((bad <= 3)); then
                sed 's/^/    /' many-client.txt | tail -5
            fi
        fi
    done
    end=$(date +%s)
    echo "    $ok/$HANDSHAKES handshakes ok in $((end - start)) s"
    stop_server "$1"
    [[ $ok -eq $HANDSHAKES ]] || fail "$bad of $HANDSHAKES handshakes failed"
}
s_many_ec() { many many-ec "$EC_URI" ec1-cert.pem; }
step "$HANDSHAKES handshakes against one EC s_server; all verified; server exits 0, no crash" s_many_ec
s_many_rsa() {
    if on_backend gcp; then
        # TLS 1.3 and 1.2 alternating need RSA-PSS: the RSA-PSS version.
        many many-rsa "$PSS_URI" rsapss-cert.pem
        return 0
    fi
    many many-rsa "$RSA_URI" rsa1-cert.pem
}
step "$HANDSHAKES handshakes against one RSA s_server; all verified; server exits 0, no crash" s_many_rsa

interop_finish

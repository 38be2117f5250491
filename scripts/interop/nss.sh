#!/usr/bin/env bash
# scripts/interop/nss.sh — interop row "nss": add p11kms to a fresh NSS database
# with modutil and drive a throwaway local token with NSS's own tools (certutil,
# cmsutil, selfserv), checking each result with another tool (openssl,
# pkcs11-tool, the database's pkcs11.txt).
#
# Environment:
#   P11KMS_MODULE          the module (default <repo>/target/release/libp11kms.so)
#   P11KMS_INTEROP_TIMEOUT seconds any one command may take (default 60)
#   P11KMS_INTEROP_KEEP    1 keeps the tempdir (its path is printed)
#
# Prints "==> [n] step" per step, runs every step even after a failure, and ends
# with "interop nss: N passed, M failed"; exits 1 naming the failed steps.
set -euo pipefail

# shellcheck source=scripts/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/../common.sh"
# shellcheck source=scripts/interop/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ROW="nss"
SO_PIN="87654321"
PIN="123456"
TOKEN="interop"
TIMEOUT="${P11KMS_INTEROP_TIMEOUT:-60}"

p11kms_ensure certutil=libnss3-tools pkcs11-tool=opensc openssl=openssl

MODULE="${P11KMS_MODULE:-$(p11kms_default_module)}"
if [[ ! -f "$MODULE" ]]; then
    echo "error: module not found: $MODULE (build it, or set P11KMS_MODULE)" >&2
    exit 1
fi
MODULE="$(cd "$(dirname "$MODULE")" && pwd)/$(basename "$MODULE")"

TMP="$(mktemp -d "${TMPDIR:-/tmp}/p11kms-interop-nss.XXXXXX")"
cleanup() {
    if [[ "${P11KMS_INTEROP_KEEP:-0}" == 1 ]]; then
        echo "interop: kept $TMP"
    else
        rm -rf "$TMP"
    fi
}
trap cleanup EXIT

interop_conf "$TMP" "$TOKEN"

DB="sql:$TMP/nssdb"
PWFILE="$TMP/pin.txt"
printf '%s\n' "$PIN" >"$PWFILE"
# certutil's key generation reads its seed from a noise file, else the keyboard.
head -c 64 /dev/urandom >"$TMP/noise"

echo "interop: module $MODULE"
echo "interop: work dir $TMP"

# ---- helpers ------------------------------------------------------------------

# Show a command, run it bounded by $TIMEOUT, indent its output (stdout+stderr).
# Standard input is /dev/null unless the caller redirects it.
run() {
    local cmd rc=0
    printf -v cmd '%q ' "$@"
    printf '    $ %s\n' "${cmd% }"
    timeout -k 5 "$TIMEOUT" "$@" 2>&1 | sed 's/^/    | /' || rc=$?
    if ((rc == 124)); then
        echo "    timed out after ${TIMEOUT}s" >&2
    fi
    return "$rc"
}
# runto FILE CMD...: run, and keep the output in FILE for the checks.
runto() {
    local file=$1 cmd rc=0
    shift
    printf -v cmd '%q ' "$@"
    printf '    $ %s\n' "${cmd% }"
    timeout -k 5 "$TIMEOUT" "$@" >"$file" 2>&1 || rc=$?
    sed 's/^/    | /' "$file"
    if ((rc == 124)); then
        echo "    timed out after ${TIMEOUT}s" >&2
    fi
    return "$rc"
}
# pkcs11-tool straight on the module: the check that does not go through NSS.
p11() { timeout -k 5 "$TIMEOUT" pkcs11-tool --module "$MODULE" --token-label "$TOKEN" "$@"; }
p11objects() { p11 --login --pin "$PIN" --list-objects 2>/dev/null; }

# has FILE REGEX WHAT: FILE matches the extended REGEX, else fail naming WHAT.
has() {
    grep -Eq -- "$2" "$1" || fail "$3"
}


# blocks LABEL|ID:HEX < pkcs11-tool --list-objects output: the objects whose label
# (or, with ID:, CKA_ID) is that. (pkcs11-tool 0.23 ignores --label and --type when
# listing, so filter here.)
blocks() {
    awk -v want="$1" '
        function flush() { if (hit) printf "%s", blk; blk = ""; hit = 0 }
        /^[A-Z]/ { flush() }
        { blk = blk $0 "\n" }
        $1 == "label:" && $2 == want { hit = 1 }
        $1 == "ID:" && "ID:" $2 == want { hit = 1 }
        END { flush() }'
}

# A certificate from the token, as PEM, by nickname.
cert_pem() { # cert_pem NICK OUT
    timeout -k 5 "$TIMEOUT" certutil -L -d "$DB" -h "$TOKEN" -f "$PWFILE" -n "$TOKEN:$1" -a >"$2"
}

# The public key of the token key with CKA_ID $1, read with pkcs11-tool, as DER SPKI.
token_pubkey() { # token_pubkey ID OUT
    p11kms_read_pubkey --id "$1" "$2" p11
}

# ---- steps ------------------------------------------------------------------------

init_token() {
    run pkcs11-tool --module "$MODULE" --init-token --label "$TOKEN" --so-pin "$SO_PIN"
    run pkcs11-tool --module "$MODULE" --token-label "$TOKEN" --login --login-type so \
        --so-pin "$SO_PIN" --init-pin --pin "$PIN"
}
step "initialise token '$TOKEN' and the user PIN (pkcs11-tool)" init_token

new_db() {
    mkdir "$TMP/nssdb"
    run certutil -N -d "$DB" --empty-password
    for f in cert9.db key4.db pkcs11.txt; do
        [[ -s "$TMP/nssdb/$f" ]] || fail "certutil -N made no $f"
    done
}
step "fresh NSS database (certutil -N --empty-password)" new_db

add_module() {
    run modutil -dbdir "$DB" -add p11kms -libfile "$MODULE" -force
    # The database's own record of it.
    has "$TMP/nssdb/pkcs11.txt" "^library=$MODULE\$" "pkcs11.txt has no library=$MODULE"
    has "$TMP/nssdb/pkcs11.txt" "^name=p11kms\$" "pkcs11.txt has no name=p11kms"
}
step "modutil -add p11kms -libfile <module>" add_module

list_module() {
    runto "$TMP/modules.txt" modutil -dbdir "$DB" -list p11kms
    has "$TMP/modules.txt" "Library file: $MODULE\$" "modutil does not name $MODULE"
    has "$TMP/modules.txt" "Manufacturer: p11kms" "modutil shows no manufacturer p11kms"
    has "$TMP/modules.txt" "Token Name: $TOKEN *\$" "modutil shows no token $TOKEN"
    has "$TMP/modules.txt" "Login Type: Login required" "token does not require login"
    has "$TMP/modules.txt" "User Pin: Initialized" "user PIN not initialised"
    runto "$TMP/modules-all.txt" modutil -dbdir "$DB" -list
    has "$TMP/modules-all.txt" "^ *[0-9]+\. p11kms\$" "modutil -list has no module p11kms"
    has "$TMP/modules-all.txt" "status: loaded" "modutil -list: not loaded"
}
step "modutil -list shows p11kms loaded with token '$TOKEN'" list_module

list_tokens() {
    runto "$TMP/tokens.txt" certutil -U -d "$DB"
    has "$TMP/tokens.txt" "^ +token: $TOKEN\$" "certutil -U lists no token $TOKEN"
    has "$TMP/tokens.txt" "uri: pkcs11:token=$TOKEN;manufacturer=p11kms;" \
        "certutil -U gives no pkcs11: URI for $TOKEN"
}
step "certutil -U lists the token" list_tokens

gen_p11tool() {
    run pkcs11-tool --module "$MODULE" --token-label "$TOKEN" --login --pin "$PIN" \
        --keypairgen --key-type EC:prime256v1 --id 01 --label ec1
}
step "generate EC P-256 key pair ec1 (id 01) with pkcs11-tool" gen_p11tool

# certutil -G on the token; pkcs11-tool must then see one more key pair of TYPE.
certutil_gen() { # certutil_gen P11TYPE CERTUTIL_KEY_OPTIONS...
    local type=$1 before after
    shift
    before="$(p11objects | grep -c "^Private Key Object; $type" || true)"
    run certutil -G -d "$DB" -h "$TOKEN" -f "$PWFILE" -z "$TMP/noise" "$@"
    after="$(p11objects | grep -c "^Private Key Object; $type" || true)"
    ((after == before + 1)) ||
        fail "pkcs11-tool sees $after $type private keys, was $before: no new one"
}
gen_rsa() { certutil_gen RSA -k rsa -g 2048; }
gen_ec384() { certutil_gen EC -k ec -q secp384r1; }
step "certutil -G -h $TOKEN: RSA 2048 key pair on the token" gen_rsa
step "certutil -G -h $TOKEN: EC P-384 key pair on the token" gen_ec384

list_keys() {
    runto "$TMP/keys.txt" certutil -K -d "$DB" -h "$TOKEN" -f "$PWFILE"
    has "$TMP/keys.txt" "Checking token \"$TOKEN\"" "certutil -K did not check token $TOKEN"
    [[ "$(grep -cE '^< *[0-9]+> (rsa|ec) ' "$TMP/keys.txt")" -eq 3 ]] ||
        fail "certutil -K does not list 3 keys"
    # Every key certutil lists is a private key pkcs11-tool sees, by CKA_ID.
    p11objects >"$TMP/objects.txt"
    local id
    while read -r id; do
        blocks "ID:$id" <"$TMP/objects.txt" | grep -q '^Private Key Object' ||
            fail "certutil lists key $id that pkcs11-tool does not"
    done < <(sed -nE 's/^< *[0-9]+> (rsa|ec) +([0-9a-f]+) .*/\2/p' "$TMP/keys.txt")
    has "$TMP/keys.txt" "^< *[0-9]+> ec +0*1 " "certutil -K does not list ec1 (id 01)"
}
step "certutil -K -h $TOKEN lists the token's keys" list_keys

# csr NAME KEYID SUBJECT [certutil options]: certutil -R with a token key; openssl
# req -verify must accept it and its key must be the token's.
csr() {
    local name=$1 id=$2 subject=$3 form=PEM
    shift 3
    [[ "$*" == *-a* ]] || form=DER
    run certutil -R -d "$DB" -h "$TOKEN" -f "$PWFILE" -z "$TMP/noise" -k "$id" \
        -s "$subject" -o "$TMP/$name" "$@"
    run openssl req -inform "$form" -in "$TMP/$name" -noout -verify -subject
    openssl req -inform "$form" -in "$TMP/$name" -noout -subject -nameopt RFC2253 |
        grep -qx "subject=$subject" || fail "the request's subject is not $subject"
    token_pubkey "$id" "$TMP/$name.tokenpub.der"
    cmp -s "$TMP/$name.tokenpub.der" \
        <(openssl req -inform "$form" -in "$TMP/$name" -noout -pubkey |
            openssl pkey -pubin -outform DER) ||
        fail "the request's public key is not the token key $id's"
}
csr_ec() {
    csr csr-ec.der 01 "CN=nss test"
    if on_backend aws gcp; then
        # ec1 is a KMS key: GetPublicKey (boto3 or REST, not the module) is the request's key.
        kms_pubkey ec1 "$TMP/ec1.kms.pem"
        cmp -s <(openssl pkey -pubin -in "$TMP/ec1.kms.pem" -outform DER) "$TMP/csr-ec.der.tokenpub.der" ||
            fail "the request's key is not the KMS key ec1"
    fi
}
csr_rsa() {
    local id
    # The one RSA key: "(orphan)" (no certificate, no label), or on gcp the
    # CryptoKey id the module gave the pair certutil -G made (with NSS's CKA_ID).
    id="$(sed -nE 's/^< *[0-9]+> rsa +([0-9a-f]+) .*/\1/p' "$TMP/keys.txt" | head -n 1)"
    [[ -n "$id" ]] || fail "no RSA key in the certutil -K listing"
    echo "$id" >"$TMP/rsa.id"
    csr csr-rsa.pem "$id" "CN=nss rsa test" -a
}
step "certutil -R with token EC key ec1: DER CSR, openssl req -verify" csr_ec
step "certutil -R with token RSA key: PEM CSR, openssl req -verify" csr_rsa

# selfsigned NICK SUBJECT OPENSSL_SIGALG [certutil options]: certutil -S -x on the
# token; certutil -L -h lists it, openssl verifies it, pkcs11-tool sees it.
selfsigned() {
    local nick=$1 subject=$2 sigalg=$3
    shift 3
    run certutil -S -d "$DB" -h "$TOKEN" -f "$PWFILE" -z "$TMP/noise" -n "$nick" \
        -s "$subject" -x -v 12 "$@"
    runto "$TMP/certs.txt" certutil -L -d "$DB" -h "$TOKEN" -f "$PWFILE"
    has "$TMP/certs.txt" "^$TOKEN:$nick +" "certutil -L -h $TOKEN does not list $TOKEN:$nick"
    cert_pem "$nick" "$TMP/$nick.pem"
    run openssl verify -CAfile "$TMP/$nick.pem" "$TMP/$nick.pem"
    openssl x509 -in "$TMP/$nick.pem" -noout -text >"$TMP/$nick.txt"
    has "$TMP/$nick.txt" "Signature Algorithm: $sigalg" "not signed with $sigalg"
    openssl x509 -in "$TMP/$nick.pem" -noout -subject -nameopt RFC2253 |
        grep -qx "subject=$subject" || fail "the certificate's subject is not $subject"
    # pkcs11-tool: a certificate object labelled NICK, the same bytes, and a private
    # key with its CKA_ID.
    p11objects >"$TMP/objects.txt"
    blocks "$nick" <"$TMP/objects.txt" >"$TMP/$nick.objs"
    has "$TMP/$nick.objs" "^Certificate Object; type = X\.509 cert" \
        "pkcs11-tool sees no certificate labelled $nick"
    local id
    id="$(awk '$1 == "ID:" { print $2; exit }' "$TMP/$nick.objs")"
    blocks "ID:$id" <"$TMP/objects.txt" | grep -q '^Private Key Object' ||
        fail "no private key on the token with the certificate's CKA_ID $id"
    p11 --read-object --type cert --label "$nick" --output-file "$TMP/$nick.der" >/dev/null 2>&1
    cmp -s "$TMP/$nick.der" <(openssl x509 -in "$TMP/$nick.pem" -outform DER) ||
        fail "pkcs11-tool reads back other bytes than certutil -L gives"
    token_pubkey "$id" "$TMP/$nick.tokenpub.der"
    cmp -s "$TMP/$nick.tokenpub.der" \
        <(openssl x509 -in "$TMP/$nick.pem" -noout -pubkey | openssl pkey -pubin -outform DER) ||
        fail "the certificate's public key is not the token key's"
}
# A CA on a new token EC key: certutil -2 asks about basic constraints on stdin.
self_ca() {
    selfsigned nssca "CN=nss ca" ecdsa-with-SHA256 -k ec -q nistp256 -t "CT,C,C" -2 \
        --keyUsage certSigning,crlSigning,digitalSignature <<<$'y\n-1\ny\n'
    has "$TMP/nssca.txt" "CA:TRUE" "the CA certificate has no CA:TRUE"
}
# A server certificate on the existing RSA key.
self_rsa() {
    selfsigned nssrsa "CN=localhost" sha256WithRSAEncryption -k "$(cat "$TMP/rsa.id")" \
        -t "P,," --extSAN dns:localhost,ip:127.0.0.1
}
step "certutil -S -x: self-signed CA cert on a new token EC key, openssl verify" self_ca
step "certutil -S -x: self-signed cert on the token RSA key, openssl verify" self_rsa

# NSS looks for certificates on a token that requires login only after logging in,
# unless the token's slot is marked "friendly" (PublicCerts: its certificates are
# public objects, as they are on p11kms). certutil -C looks the issuer up without
# its -f password, so it would ask the terminal for the PIN.
friendly() {
    run modutil -dbdir "$DB" -default p11kms -mechanisms FRIENDLY -force
    has "$TMP/nssdb/pkcs11.txt" "slotFlags=[^]]*PublicCerts" "pkcs11.txt has no PublicCerts slot flag"
    # A public session must show the token's certificates: pkcs11-tool, no login.
    p11 --list-objects --type cert 2>/dev/null | grep -Eq "label: +nssca\$" ||
        fail "pkcs11-tool sees no certificate nssca without login"
}
step "modutil -mechanisms FRIENDLY: the token's certificates are public" friendly

issue() {
    # A leaf key and request made by openssl alone; the token CA signs it.
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
        -keyout "$TMP/leaf.key" -subj "/CN=nss leaf" -outform DER -out "$TMP/leaf.csr" 2>/dev/null
    run certutil -C -d "$DB" -f "$PWFILE" -c "$TOKEN:nssca" -i "$TMP/leaf.csr" \
        -o "$TMP/leaf.der" -m "$((RANDOM + 1000))" -v 6
    openssl x509 -inform DER -in "$TMP/leaf.der" -out "$TMP/leaf.pem"
    run openssl verify -CAfile "$TMP/nssca.pem" "$TMP/leaf.pem"
    openssl x509 -in "$TMP/leaf.pem" -noout -issuer -nameopt RFC2253 |
        grep -qx "issuer=CN=nss ca" || fail "the leaf's issuer is not CN=nss ca"
    # The leaf's key is openssl's.
    cmp -s <(openssl x509 -in "$TMP/leaf.pem" -noout -pubkey | openssl pkey -pubin -outform DER) \
        <(openssl pkey -in "$TMP/leaf.key" -pubout -outform DER) ||
        fail "the leaf certificate's key is not the requested one"
}
step "certutil -C: the token CA signs an openssl request, openssl verify" issue

cms() {
    printf 'signed by a p11kms token key through NSS\n' >"$TMP/data.txt"
    # -G adds signed attributes: without any, NSS 3.87 puts a raw r|s ECDSA signature
    # in the SignerInfo (with a software key too), which openssl rejects.
    run cmsutil -S -G -d "$DB" -f "$PWFILE" -N "$TOKEN:nssca" -Y NONE -i "$TMP/data.txt" \
        -o "$TMP/data.p7"
    # -binary: the content is bytes, not MIME text to canonicalise.
    run openssl cms -verify -binary -inform DER -in "$TMP/data.p7" -CAfile "$TMP/nssca.pem" \
        -purpose any -out "$TMP/data.out"
    cmp -s "$TMP/data.txt" "$TMP/data.out" || fail "openssl cms -verify gives other content"
}
step "cmsutil -S signs with the token CA key, openssl cms -verify" cms

# On gcp the RSA key certutil -G made is a PKCS#1 v1.5 Cloud KMS version (NSS's
# template names no CKA_ALLOWED_MECHANISMS, with --pss neither, and a version has one
# algorithm), and TLS 1.3 signs with RSA-PSS. There the handshake uses an RSA-PSS key
# pair: pkcs11-tool --allowed-mechanisms makes an RSA_SIGN_PSS_2048_SHA256 version
# (checked over REST), pkcs11-tool --set-id gives it the CKA_ID NSS pairs a certificate
# with (SHA-1 of the modulus). NSS 3.87 cannot sign with a PSS-only key outside TLS
# (certutil -S --pss-sign asks C_SignInit for CKM_RSA_PKCS first and gives up; so it
# does on SoftHSM), so an openssl CA certifies the token key and certutil -A puts the
# certificate on the token.
pss_key() {
    local id
    p11 --login --pin "$PIN" --keypairgen --key-type rsa:2048 --id 7e --label nsspss \
        --allowed-mechanisms RSA-PKCS-PSS,SHA256-RSA-PKCS-PSS >/dev/null
    [[ "$(gcp_algorithm nsspss)" == RSA_SIGN_PSS_2048_SHA256 ]] ||
        fail "nsspss is not an RSA_SIGN_PSS_2048_SHA256 version: $(gcp_algorithm nsspss)"
    token_pubkey 7e "$TMP/nsspss.pub.der"
    id="$(openssl rsa -pubin -inform DER -in "$TMP/nsspss.pub.der" -noout -modulus | cut -d= -f2 |
        python3 -c 'import hashlib, sys; print(hashlib.sha1(bytes.fromhex(sys.stdin.read().strip())).hexdigest())')"
    run pkcs11-tool --module "$MODULE" --token-label "$TOKEN" --login --pin "$PIN" \
        --type privkey --id 7e --set-id "$id"
    p11objects | blocks "ID:$id" | grep -q '^Public Key Object' ||
        fail "the public key of nsspss does not have the new CKA_ID $id"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$TMP/pssca.key" \
        -subj "/CN=nss pss ca" -days 2 -out "$TMP/pssca.pem" 2>/dev/null
    openssl pkey -pubin -inform DER -in "$TMP/nsspss.pub.der" -out "$TMP/nsspss.pub.pem"
    printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' >"$TMP/nsspss.ext"
    run openssl x509 -new -subj /CN=localhost -force_pubkey "$TMP/nsspss.pub.pem" \
        -CA "$TMP/pssca.pem" -CAkey "$TMP/pssca.key" -days 2 -extfile "$TMP/nsspss.ext" \
        -out "$TMP/nsspss.pem"
    run certutil -A -d "$DB" -h "$TOKEN" -f "$PWFILE" -n nsspss -t "P,," -i "$TMP/nsspss.pem"
    # NSS paired it with the token key: the certificate object has the key's CKA_ID.
    p11objects | blocks "ID:$id" | grep -q '^Certificate Object' ||
        fail "the certificate nsspss on the token does not have the key's CKA_ID $id"
    cp "$TMP/pssca.pem" "$TMP/nsspss.ca.pem"
}
tls() {
    local port nick=nssrsa
    if on_backend gcp; then
        echo "    gcp: TLS 1.3 on an RSA-PSS key pair (nssrsa is PKCS#1 v1.5 on Cloud KMS)"
        pss_key
        nick=nsspss
    else
        cp "$TMP/nssrsa.pem" "$TMP/nssrsa.ca.pem"
    fi
    port=$(free_port)
    timeout -k 5 "$TIMEOUT" selfserv -d "$DB" -f "$PWFILE" -p "$port" -n "$TOKEN:$nick" \
        -V tls1.2:tls1.3 >"$TMP/selfserv.log" 2>&1 &
    SERVER_PID=$!
    trap 'kill "$SERVER_PID" 2>/dev/null || true' EXIT
    local up=0
    for _ in $(seq 1 50); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            up=1
            break
        fi
        kill -0 "$SERVER_PID" 2>/dev/null || break
        sleep 0.2
    done
    ((up)) || {
        sed 's/^/    | /' "$TMP/selfserv.log"
        fail "selfserv did not start on port $port"
    }
    echo "    (selfserv on port $port, certificate $TOKEN:$nick)"
    runto "$TMP/client.txt" openssl s_client -connect "127.0.0.1:$port" \
        -CAfile "$TMP/$nick.ca.pem" -verify_return_error -verify_hostname localhost -brief
    has "$TMP/client.txt" "^Verification: OK" "openssl s_client did not verify the server"
    has "$TMP/client.txt" "^Protocol version: TLSv1\.3" "not TLS 1.3"
    has "$TMP/client.txt" "^Peer certificate: CN ?= ?localhost" "the server did not present $nick"
    has "$TMP/client.txt" "^Signature type: RSA-PSS" "the handshake was not signed with RSA-PSS"
}
step "selfserv TLS 1.3 with the token RSA key, openssl s_client" tls

delete() {
    local id
    id="$(cat "$TMP/rsa.id")"
    run certutil -D -d "$DB" -h "$TOKEN" -f "$PWFILE" -n "$TOKEN:nssrsa"
    p11objects >"$TMP/objects.txt"
    if blocks nssrsa <"$TMP/objects.txt" | grep -q '^Certificate Object'; then
        fail "pkcs11-tool still sees certificate nssrsa"
    fi
    run certutil -F -d "$DB" -h "$TOKEN" -f "$PWFILE" -k "$id"
    p11objects >"$TMP/objects.txt"
    if blocks "ID:$id" <"$TMP/objects.txt" | grep -q '^Private Key Object'; then
        fail "pkcs11-tool still sees private key $id"
    fi
    blocks ec1 <"$TMP/objects.txt" | grep -q '^Private Key Object' ||
        fail "deleting $id took ec1 with it"
}
step "certutil -D / -F delete a certificate and a key, pkcs11-tool agrees" delete

remove_module() {
    run modutil -dbdir "$DB" -delete p11kms -force
    if grep -q "^library=$MODULE\$" "$TMP/nssdb/pkcs11.txt"; then
        fail "pkcs11.txt still names $MODULE"
    fi
}
step "modutil -delete p11kms" remove_module

interop_finish

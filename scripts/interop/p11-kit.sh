#!/usr/bin/env bash
# scripts/interop/p11-kit.sh — interop row "p11-kit/gnutls": register p11kms with
# p11-kit through scripts/install-p11-kit-module.sh and drive a throwaway local
# token with GnuTLS (p11tool, certtool, gnutls-serv), the way a user of p11-kit
# would, checking each result with another tool (openssl, pkcs11-tool).
#
# p11-kit ignores per-user module files in programs running as root, and this
# script must leave nothing behind in /etc, so as root every token command runs as
# an unprivileged user (P11KMS_INTEROP_USER, default nobody) whose HOME is in the
# tempdir; the module file goes to that HOME's ~/.config/pkcs11/modules/.
#
# Environment:
#   P11KMS_MODULE          the module (default <repo>/target/release/libp11kms.so)
#   P11KMS_INTEROP_USER    user the token commands run as when root (default nobody)
#   P11KMS_INTEROP_TIMEOUT seconds any one command may take (default 60)
#   P11KMS_INTEROP_KEEP    1 keeps the tempdir (its path is printed)
#
# Prints "==> [n] step" per step, runs every step even after a failure, and ends
# with "interop p11-kit/gnutls: N passed, M failed"; exits 1 naming the failed steps.
set -euo pipefail

# shellcheck source=scripts/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/../common.sh"
# shellcheck source=scripts/interop/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ROW="p11-kit/gnutls"
SO_PIN="87654321"
PIN="123456"
TOKEN="interop"
TIMEOUT="${P11KMS_INTEROP_TIMEOUT:-60}"

p11kms_ensure p11-kit=p11-kit p11tool=gnutls-bin pkcs11-tool=opensc openssl=openssl \
    p11kitproxy=p11-kit-modules

MODULE="${P11KMS_MODULE:-$(p11kms_default_module)}"
if [[ ! -f "$MODULE" ]]; then
    echo "error: module not found: $MODULE (build it, or set P11KMS_MODULE)" >&2
    exit 1
fi
MODULE="$(cd "$(dirname "$MODULE")" && pwd)/$(basename "$MODULE")"
PROXY="$(compgen -G "/usr/lib/*/p11-kit-proxy.so" | head -n 1)"

TMP="$(mktemp -d "${TMPDIR:-/tmp}/p11kms-interop-p11kit.XXXXXX")"
cleanup() {
    if [[ "${P11KMS_INTEROP_KEEP:-0}" == 1 ]]; then
        echo "interop: kept $TMP"
    else
        rm -rf "$TMP"
    fi
}
trap cleanup EXIT

# Who runs the token commands: as root, an unprivileged user (see the header).
AS=()
TUSER="$(id -un)"
if [[ "$(id -u)" -eq 0 ]]; then
    TUSER="${P11KMS_INTEROP_USER:-nobody}"
    AS=(setpriv --reuid="$(id -u "$TUSER")" --regid="$(id -g "$TUSER")" --clear-groups)
    chown "$TUSER" "$TMP"
fi
chmod 0755 "$TMP"
if ! "${AS[@]}" test -w "$TMP"; then
    echo "error: $TUSER cannot write $TMP (set TMPDIR to a directory it can reach)" >&2
    exit 1
fi
export HOME="$TMP/home" XDG_CONFIG_HOME="$TMP/home/.config"
"${AS[@]}" mkdir -p "$XDG_CONFIG_HOME"
# The module must be readable by that user: use a copy when it is not (a build
# under /root, say).
if ! "${AS[@]}" test -r "$MODULE"; then
    cp "$MODULE" "$TMP/libp11kms.so"
    chmod 0755 "$TMP/libp11kms.so"
    MODULE="$TMP/libp11kms.so"
fi

interop_conf "$TMP" "$TOKEN"

echo "interop: module $MODULE"
echo "interop: work dir $TMP"

# ---- helpers ------------------------------------------------------------------

# Show a command, run it bounded by $TIMEOUT, indent its output (stdout+stderr).
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
# The same, as the token user. GnuTLS reads the PIN from GNUTLS_PIN.
user() { run "${AS[@]}" env GNUTLS_PIN="$PIN" "$@"; }
userto() {
    local file=$1
    shift
    runto "$file" "${AS[@]}" env GNUTLS_PIN="$PIN" "$@"
}
# pkcs11-tool straight on the module: the check that does not go through p11-kit.
p11() { "${AS[@]}" pkcs11-tool --module "$MODULE" --token-label "$TOKEN" "$@"; }
p11to() {
    local file=$1
    shift
    runto "$file" "${AS[@]}" pkcs11-tool --module "$MODULE" --token-label "$TOKEN" "$@"
}

# has FILE REGEX WHAT: FILE matches the extended REGEX, else fail naming WHAT.
has() {
    grep -Eq -- "$2" "$1" || fail "$3"
}


# blocks LABEL < pkcs11-tool --list-objects output: the objects labelled LABEL.
# (pkcs11-tool 0.23 ignores --label and --type when listing, so filter here.)
blocks() {
    awk -v l="$1" '
        function flush() { if (hit) printf "%s", blk; blk = ""; hit = 0 }
        /^[A-Z]/ { flush() }
        { blk = blk $0 "\n" }
        $1 == "label:" && $2 == l { hit = 1 }
        END { flush() }'
}
# The CKA_ID of the private key labelled $1, in hex, as pkcs11-tool reports it.
key_id() {
    p11 --login --pin "$PIN" --list-objects 2>/dev/null | blocks "$1" |
        awk '/^Private Key Object/ { p = 1 } p && $1 == "ID:" { print $2; exit }'
}

# A certtool template: template FILE CN [extra lines].
template() {
    local file=$1 cn=$2
    shift 2
    {
        printf 'cn = "%s"\nserial = %d\nexpiration_days = 30\n' "$cn" "$((RANDOM + 1))"
        printf '%s\n' "$@"
    } >"$file"
}

# The public key of a certificate and of a PEM key, as openssl sees them.
same_pubkey() { # same_pubkey CERT PUBKEY_PEM
    cmp -s <(openssl x509 -in "$1" -noout -pubkey | openssl pkey -pubin -outform DER) \
        <(openssl pkey -pubin -in "$2" -outform DER) ||
        fail "the public key in $1 is not the token key's ($2)"
}

# ---- steps ------------------------------------------------------------------------

install_module() {
    run env P11KMS_P11KIT_MODULE_DIR="$XDG_CONFIG_HOME/pkcs11/modules" \
        "$P11KMS_ROOT/scripts/install-p11-kit-module.sh" "$MODULE"
    local f="$XDG_CONFIG_HOME/pkcs11/modules/p11kms.module"
    chown -R "$TUSER" "$XDG_CONFIG_HOME/pkcs11"
    has "$f" "^module: $MODULE\$" "$f does not name $MODULE"
}
step "install the p11-kit module file (scripts/install-p11-kit-module.sh)" install_module

init_token() {
    run "${AS[@]}" pkcs11-tool --module "$MODULE" --init-token --label "$TOKEN" \
        --so-pin "$SO_PIN"
    run "${AS[@]}" pkcs11-tool --module "$MODULE" --token-label "$TOKEN" --login \
        --login-type so --so-pin "$SO_PIN" --init-pin --pin "$PIN"
}
step "initialise token '$TOKEN' and the user PIN (pkcs11-tool)" init_token

list_modules() {
    userto "$TMP/modules.txt" p11-kit list-modules
    # The p11kms block: from its "name: path" line to the next module's.
    sed -n "/^p11kms: /,/^[^ ]/p" "$TMP/modules.txt" >"$TMP/p11kms-module.txt"
    has "$TMP/p11kms-module.txt" "^p11kms: $MODULE\$" "p11-kit lists no module p11kms: $MODULE"
    has "$TMP/p11kms-module.txt" "^ +token: $TOKEN\$" "p11-kit lists no token $TOKEN under p11kms"
    has "$TMP/p11kms-module.txt" "^ +token-initialized\$" "token not flagged token-initialized"
    has "$TMP/p11kms-module.txt" "^ +user-pin-initialized\$" "token not flagged user-pin-initialized"
    has "$TMP/p11kms-module.txt" "^ +login-required\$" "token not flagged login-required"
}
step "p11-kit list-modules shows p11kms and token '$TOKEN'" list_modules

list_tokens() {
    userto "$TMP/tokens.txt" p11tool --list-tokens
    has "$TMP/tokens.txt" "URL: pkcs11:.*token=$TOKEN(;|\$)" "p11tool lists no pkcs11: URL for token $TOKEN"
    has "$TMP/tokens.txt" "Module: $MODULE\$" "p11tool does not name $MODULE"
}
step "p11tool --list-tokens shows the token's pkcs11: URL" list_tokens

# gen LABEL P11TOOL_TYPE PKCS11_TOOL_TYPE OPENSSL_REGEX [OPTIONS]: generate a key
# pair on the token with p11tool, keep the public key it prints, check it with
# pkcs11-tool (the objects) and openssl (the public key).
gen() {
    local label=$1 type=$2 type_p11=$3 want_pub=$4
    shift 4
    user p11tool --login --generate-privkey "$type" "$@" --label "$label" \
        --outfile "$TMP/$label.pub.pem" "pkcs11:token=$TOKEN"
    p11to "$TMP/objects.txt" --login --pin "$PIN" --list-objects
    blocks "$label" <"$TMP/objects.txt" >"$TMP/$label.objs"
    has "$TMP/$label.objs" "^Private Key Object; $type_p11" "pkcs11-tool sees no $type_p11 private key $label"
    has "$TMP/$label.objs" "^Public Key Object; $type_p11" "pkcs11-tool sees no $type_p11 public key $label"
    run openssl pkey -pubin -in "$TMP/$label.pub.pem" -noout -text
    openssl pkey -pubin -in "$TMP/$label.pub.pem" -noout -text >"$TMP/$label.pub.txt"
    has "$TMP/$label.pub.txt" "$want_pub" "openssl: public key of $label is not '$want_pub'"
    if on_backend aws gcp; then
        # A KMS key: GetPublicKey (boto3 or REST, not the module) is the key p11tool printed.
        kms_pubkey "$label" "$TMP/$label.kms.pem"
        pubkeys_equal "$TMP/$label.kms.pem" "$TMP/$label.pub.pem" || fail "$label is not the KMS key"
    fi
}
gen_ec256() { gen ec1 ECDSA EC "NIST CURVE: P-256" --curve secp256r1; }
gen_ec384() { gen ec384 ECDSA EC "NIST CURVE: P-384" --curve secp384r1; }
gen_rsa() { gen rsa1 RSA RSA "Public-Key: \(2048 bit\)" --bits 2048; }
step "p11tool --generate-privkey ECDSA P-256 (ec1)" gen_ec256
step "p11tool --generate-privkey ECDSA P-384 (ec384)" gen_ec384
step "p11tool --generate-privkey RSA 2048 (rsa1)" gen_rsa

list_public() {
    runto "$TMP/public.txt" "${AS[@]}" p11tool --list-all "pkcs11:token=$TOKEN"
    for label in ec1 ec384 rsa1; do
        has "$TMP/public.txt" "URL: pkcs11:.*token=$TOKEN;.*object=$label;type=public\$" \
            "no pkcs11: URL for public key $label"
    done
    if grep -q 'type=private' "$TMP/public.txt"; then
        fail "private keys listed without login"
    fi
}
step "p11tool --list-all (no login): public keys with pkcs11: URLs, no private" list_public

list_login() {
    userto "$TMP/all.txt" p11tool --login --list-all "pkcs11:token=$TOKEN"
    for label in ec1 ec384 rsa1; do
        has "$TMP/all.txt" "URL: pkcs11:.*token=$TOKEN;.*object=$label;type=private\$" \
            "no pkcs11: URL for private key $label"
        has "$TMP/all.txt" "URL: pkcs11:.*token=$TOKEN;.*object=$label;type=public\$" \
            "no pkcs11: URL for public key $label"
    done
    has "$TMP/all.txt" "Private key \(EC/ECDSA-SECP256R1\)" "ec1 is not an EC P-256 private key"
    has "$TMP/all.txt" "Private key \(EC/ECDSA-SECP384R1\)" "ec384 is not an EC P-384 private key"
    has "$TMP/all.txt" "Private key \(RSA-2048\)" "rsa1 is not an RSA-2048 private key"
    # The same through --set-pin instead of GNUTLS_PIN.
    runto "$TMP/privkeys.txt" "${AS[@]}" p11tool --login --set-pin="$PIN" \
        --list-privkeys "pkcs11:token=$TOKEN"
    [[ "$(grep -c 'type=private$' "$TMP/privkeys.txt")" -eq 3 ]] ||
        fail "p11tool --set-pin --list-privkeys does not list the 3 private keys"
}
step "p11tool --login --list-all (GNUTLS_PIN, --set-pin): private keys too" list_login

# selfsigned NAME LABEL OPENSSL_SIGALG [certtool options]
selfsigned() {
    local name=$1 label=$2 sigalg=$3
    shift 3
    template "$TMP/$name.tmpl" "p11kms interop $name" ca cert_signing_key signing_key
    user certtool --generate-self-signed \
        --load-privkey "pkcs11:token=$TOKEN;object=$label;type=private" \
        --template "$TMP/$name.tmpl" --outfile "$TMP/$name.pem" "$@"
    run openssl verify -CAfile "$TMP/$name.pem" "$TMP/$name.pem"
    openssl x509 -in "$TMP/$name.pem" -noout -text >"$TMP/$name.txt"
    run openssl x509 -in "$TMP/$name.pem" -noout -subject -issuer -ext basicConstraints
    has "$TMP/$name.txt" "Signature Algorithm: $sigalg" "not signed with $sigalg"
    has "$TMP/$name.txt" "Subject: CN ?= ?p11kms interop $name\$" "wrong subject"
    same_pubkey "$TMP/$name.pem" "$TMP/$label.pub.pem"
}
cert_ec() { selfsigned ec1-cert ec1 ecdsa-with-SHA256; }
cert_ec384() { selfsigned ec384-cert ec384 ecdsa-with-SHA384 --hash SHA384; }
cert_rsa() { selfsigned rsa1-cert rsa1 sha256WithRSAEncryption; }
# On gcp a Cloud KMS version has one algorithm: rsa1 is RSA_SIGN_PKCS1_2048_SHA256, so
# RSA-PSS (certtool's PSS certificate, TLS 1.3) uses rsapss, an RSA_SIGN_PSS_2048_SHA256
# version made by pkcs11-tool --allowed-mechanisms naming only PSS (p11tool 3.7.9's
# --generate-privkey=RSA-PSS fails inside GnuTLS, "The request is invalid", before any
# PKCS#11 call), checked over REST.
gen_pss() {
    p11 --login --pin "$PIN" --keypairgen --key-type rsa:2048 --id 5e --label rsapss \
        --allowed-mechanisms RSA-PKCS-PSS,SHA256-RSA-PKCS-PSS >/dev/null
    [[ "$(gcp_algorithm rsapss)" == RSA_SIGN_PSS_2048_SHA256 ]] ||
        fail "rsapss is not an RSA_SIGN_PSS_2048_SHA256 version: $(gcp_algorithm rsapss)"
    p11kms_read_pubkey --id 5e "$TMP/rsapss.pub.der" p11
    openssl pkey -pubin -inform DER -in "$TMP/rsapss.pub.der" -out "$TMP/rsapss.pub.pem"
    kms_pubkey rsapss "$TMP/rsapss.kms.pem"
    pubkeys_equal "$TMP/rsapss.kms.pem" "$TMP/rsapss.pub.pem" || fail "rsapss is not the KMS key"
}
cert_pss() {
    if on_backend gcp; then
        # GnuTLS reports the module's CKR_MECHANISM_INVALID as an unsupported feature.
        refused 'PKCS #11 unsupported feature' selfsigned rsa1-pss-cert rsa1 rsassaPss --sign-params RSA-PSS
        echo "    gcp: RSA-PSS with the RSA-PSS key rsapss"
        gen_pss
        selfsigned rsapss-cert rsapss rsassaPss --sign-params RSA-PSS
        return 0
    fi
    selfsigned rsa1-pss-cert rsa1 rsassaPss --sign-params RSA-PSS
}
step "certtool --generate-self-signed with EC P-256 token key, openssl verify" cert_ec
step "certtool --generate-self-signed with EC P-384 token key (SHA-384), openssl verify" cert_ec384
step "certtool --generate-self-signed with RSA token key, openssl verify" cert_rsa
step "certtool --generate-self-signed RSA-PSS with RSA token key, openssl verify" cert_pss

csr() {
    template "$TMP/req.tmpl" "p11kms interop request"
    user certtool --generate-request \
        --load-privkey "pkcs11:token=$TOKEN;object=ec1;type=private" \
        --template "$TMP/req.tmpl" --outfile "$TMP/req.pem"
    run openssl req -in "$TMP/req.pem" -noout -verify -subject
    cmp -s <(openssl req -in "$TMP/req.pem" -noout -pubkey | openssl pkey -pubin -outform DER) \
        <(openssl pkey -pubin -in "$TMP/ec1.pub.pem" -outform DER) ||
        fail "the request's public key is not ec1's"
}
step "certtool --generate-request with EC token key, openssl req -verify" csr

test_sign() {
    for label in ec1 ec384 rsa1; do
        userto "$TMP/test-sign-$label.txt" p11tool --login --test-sign \
            "pkcs11:token=$TOKEN;object=$label;type=private"
        has "$TMP/test-sign-$label.txt" "Verifying against public key in the token\.\.\. ok" \
            "p11tool --test-sign did not verify $label"
    done
}
step "p11tool --test-sign with each private key" test_sign

write_cert() {
    local id
    id="$(key_id ec1)"
    [[ -n "$id" ]] || fail "no CKA_ID for ec1"
    user p11tool --login --write --load-certificate "$TMP/ec1-cert.pem" --label ec1 \
        --id "$id" "pkcs11:token=$TOKEN"
    userto "$TMP/certs.txt" p11tool --list-all-certs "pkcs11:token=$TOKEN"
    has "$TMP/certs.txt" "URL: pkcs11:.*token=$TOKEN;id=[^;]*;object=ec1;type=cert\$" \
        "p11tool lists no certificate ec1"
    # Read back with pkcs11-tool, compare with openssl's DER.
    run "${AS[@]}" pkcs11-tool --module "$MODULE" --token-label "$TOKEN" --read-object \
        --type cert --label ec1 --output-file "$TMP/ec1-cert.der"
    cmp -s "$TMP/ec1-cert.der" <(openssl x509 -in "$TMP/ec1-cert.pem" -outform DER) ||
        fail "the certificate read back is not the one written"
    p11to "$TMP/cert-obj.txt" --list-objects
    blocks ec1 <"$TMP/cert-obj.txt" | awk '/^Certificate Object/ { p = 1 } p' >"$TMP/ec1-cert-obj.txt"
    has "$TMP/ec1-cert-obj.txt" "^Certificate Object; type = X\.509 cert" "pkcs11-tool sees no certificate ec1"
    has "$TMP/ec1-cert-obj.txt" "ID: +$id\$" "the certificate does not have ec1's CKA_ID $id"
}
step "p11tool --write a certificate to the token, read back with pkcs11-tool" write_cert

# tls LABEL CERT: gnutls-serv with the token key; openssl s_client must verify it.
tls() {
    local label=$1 cert=$2 port
    SERVER_PID="" # global: the subshell's EXIT trap kills it
    for _ in 1 2 3 4 5; do
        port=$(free_port)
        "${AS[@]}" env GNUTLS_PIN="$PIN" timeout -k 5 "$TIMEOUT" gnutls-serv --port "$port" \
            --x509keyfile "pkcs11:token=$TOKEN;object=$label;type=private" \
            --x509certfile "$cert" >"$TMP/serv-$label.log" 2>&1 &
        SERVER_PID=$!
        # Up means listening on 127.0.0.1 itself (gnutls-serv says "listening" per
        # address family; a port taken on IPv4 left it listening on IPv6 only).
        local up=0
        for _ in $(seq 1 50); do
            if grep -q 'listening' "$TMP/serv-$label.log" 2>/dev/null &&
                (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
                up=1
                break
            fi
            kill -0 "$SERVER_PID" 2>/dev/null || break
            sleep 0.2
        done
        if ((up)); then
            break
        fi
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
        SERVER_PID=""
    done
    [[ -n "$SERVER_PID" ]] || {
        sed 's/^/    | /' "$TMP/serv-$label.log"
        fail "gnutls-serv did not start"
    }
    trap 'kill "$SERVER_PID" 2>/dev/null || true' EXIT
    echo "    (gnutls-serv on port $port, key pkcs11:token=$TOKEN;object=$label;type=private)"
    runto "$TMP/client-$label.txt" openssl s_client -connect "127.0.0.1:$port" \
        -CAfile "$TMP/$label-cert.pem" -verify_return_error -brief </dev/null
    has "$TMP/client-$label.txt" "^Verification: OK" "openssl s_client did not verify the server"
    has "$TMP/client-$label.txt" "^Protocol version: TLSv1.3" "not TLS 1.3"
    has "$TMP/client-$label.txt" "^Peer certificate: CN ?= ?p11kms interop $label-cert" \
        "the server did not present $label-cert"
}
tls_ec() { tls ec1 "pkcs11:token=$TOKEN;object=ec1;type=cert"; }
tls_rsa() {
    if on_backend gcp; then
        # rsa1 (PKCS#1 v1.5) cannot sign the handshake; rsapss (cert_pss) does.
        refused 'alert internal error' tls rsa1 "$TMP/rsa1-cert.pem"
        echo "    gcp: TLS 1.3 with the RSA-PSS key rsapss"
        tls rsapss "$TMP/rsapss-cert.pem"
        return 0
    fi
    tls rsa1 "$TMP/rsa1-cert.pem"
}
step "gnutls-serv TLS 1.3 with EC token key and token certificate, openssl s_client" tls_ec
step "gnutls-serv TLS 1.3 with RSA token key (RSA-PSS), openssl s_client" tls_rsa

proxy() {
    runto "$TMP/proxy.txt" "${AS[@]}" pkcs11-tool --module "$PROXY" --token-label "$TOKEN" \
        --login --pin "$PIN" --list-objects --type privkey
    for label in ec1 ec384 rsa1; do
        has "$TMP/proxy.txt" "label: +$label\$" "p11-kit-proxy does not show private key $label"
    done
}
step "pkcs11-tool through p11-kit-proxy.so sees the token's keys" proxy

delete() {
    user p11tool --login --generate-privkey ECDSA --curve secp256r1 --label gone \
        --outfile "$TMP/gone.pub.pem" "pkcs11:token=$TOKEN"
    user p11tool --login --batch --delete "pkcs11:token=$TOKEN;object=gone"
    p11to "$TMP/gone.txt" --login --pin "$PIN" --list-objects
    if grep -Eq "label: +gone\$" "$TMP/gone.txt"; then
        fail "pkcs11-tool still lists an object labelled gone"
    fi
    has "$TMP/gone.txt" "label: +ec1\$" "deleting gone took ec1 with it"
}
step "p11tool --delete a key pair, pkcs11-tool no longer lists it" delete

interop_finish

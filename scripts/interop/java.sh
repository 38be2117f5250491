#!/usr/bin/env bash
# scripts/interop/java.sh — interop row "java": drive p11kms with Java's SunPKCS11
# provider (keytool, jarsigner and a small program, P11Check.java) on a throwaway
# local token, and check every result with a tool that does not use the token
# (openssl, the JDK's software providers).
#
# Environment:
#   P11KMS_MODULE           the module (default <repo>/target/release/libp11kms.so)
#   P11KMS_INTEROP_KEEP     1 keeps the temporary directory (its path is printed)
#   P11KMS_INTEROP_TIMEOUT  seconds any one command may take (default 120)
#
# Prints "==> [n] step" per step, runs every step even after a failure, and ends with
# "interop java: N passed, 0 failed" (exit 0), or names the failed steps (exit 1).

# The step functions are called through `step`, which shellcheck cannot follow.
# shellcheck disable=SC2317
set -euo pipefail

ROW="java"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=scripts/common.sh
. "$HERE/../common.sh"
# shellcheck source=scripts/interop/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SO_PIN="87654321"
PIN="123456"
TOKEN="interop"
TIMEOUT="${P11KMS_INTEROP_TIMEOUT:-120}"

p11kms_ensure pkcs11-tool=opensc openssl=openssl engine=libengine-pkcs11-openssl \
    timeout=coreutils unzip=unzip \
    java=openjdk-17-jdk-headless keytool=openjdk-17-jdk-headless \
    jarsigner=openjdk-17-jdk-headless javac=openjdk-17-jdk-headless \
    jar=openjdk-17-jdk-headless

MODULE="${P11KMS_MODULE:-$(p11kms_default_module)}"
if [[ ! -f "$MODULE" ]]; then
    echo "error: module not found: $MODULE (build it, or set P11KMS_MODULE)" >&2
    exit 1
fi
MODULE="$(cd "$(dirname "$MODULE")" && pwd)/$(basename "$MODULE")"

TMP="$(mktemp -d "${TMPDIR:-/tmp}/p11kms-interop-$ROW.XXXXXX")"
cleanup() {
    if [[ "${P11KMS_INTEROP_KEEP:-0}" == 1 ]]; then
        echo "kept $TMP"
    else
        rm -rf "$TMP"
    fi
}
trap cleanup EXIT

interop_conf "$TMP" "$TOKEN"

# SunPKCS11's configuration: the template with the module's path filled in.
CFG="$TMP/sunpkcs11.cfg"
sed "s#@P11KMS_MODULE@#$MODULE#" "$HERE/sunpkcs11.cfg" >"$CFG"
KS=(-storetype PKCS11 -providerClass sun.security.pkcs11.SunPKCS11 -providerArg "$CFG"
    -storepass "$PIN")

# Java must not pick up a user's options or ask anything.
unset JAVA_TOOL_OPTIONS JDK_JAVA_OPTIONS _JAVA_OPTIONS
export CI="${CI:-true}"

# ---- step machinery ---------------------------------------------------------




# Show a command, run it under the time limit with no stdin, show its output
# indented and keep it in $TMP/out for the checks that follow.
run() {
    local cmd rc=0
    printf -v cmd '%q ' "$@"
    printf '    $ %s\n' "${cmd% }"
    timeout --kill-after=5 "$TIMEOUT" "$@" </dev/null >"$TMP/out" 2>&1 || rc=$?
    sed 's/^/    /' "$TMP/out"
    if [[ $rc -eq 124 || $rc -eq 137 ]]; then
        echo "    timed out after ${TIMEOUT}s" >&2
    fi
    return "$rc"
}

p11() {
    run pkcs11-tool --module "$MODULE" --token-label "$TOKEN" "$@"
}

# ---- steps ------------------------------------------------------------------

init_token() {
    run pkcs11-tool --module "$MODULE" --init-token --label "$TOKEN" --so-pin "$SO_PIN"
    p11 --login --login-type so --so-pin "$SO_PIN" --init-pin --pin "$PIN"
}

keytool_list_empty() {
    run keytool -list "${KS[@]}"
    grep -q "Keystore provider: SunPKCS11-p11kms" "$TMP/out" || fail "not the SunPKCS11 keystore"
    grep -q "Your keystore contains 0 entries" "$TMP/out" || fail "a new token should be empty"
}

genkeypair_ec() {
    run keytool -genkeypair "${KS[@]}" -alias ec1 -keyalg EC -groupname secp256r1 \
        -dname CN=ec1 -validity 30
}

genkeypair_rsa() {
    run keytool -genkeypair "${KS[@]}" -alias rsa1 -keyalg RSA -keysize 2048 \
        -dname CN=rsa1 -validity 30
}

keytool_list_both() {
    run keytool -list "${KS[@]}"
    grep -q "Your keystore contains 2 entries" "$TMP/out" || fail "expected 2 entries"
    grep -q "^ec1, PrivateKeyEntry" "$TMP/out" || fail "ec1 is not a PrivateKeyEntry"
    grep -q "^rsa1, PrivateKeyEntry" "$TMP/out" || fail "rsa1 is not a PrivateKeyEntry"
}

# The objects keytool wrote, as pkcs11-tool sees them: a private key and a
# certificate per alias (SunPKCS11 keeps the alias in CKA_ID and the cert's CKA_LABEL).
objects_on_token() {
    local alias id
    p11 --login --pin "$PIN" --list-objects
    cp "$TMP/out" "$TMP/objects"
    for alias in ec1 rsa1; do
        id="$(printf '%s' "$alias" | od -An -tx1 | tr -d ' \n')"
        awk -v id="$id" '/^Private Key Object/{k=1} /^[A-Z]/ && !/^Private Key Object/{k=0}
            k && $1 == "ID:" && $2 == id {found=1} END{exit !found}' "$TMP/objects" ||
            fail "no private key with CKA_ID $id ($alias)"
        awk -v a="$alias" '/^Certificate Object/{c=1} /^[A-Z]/ && !/^Certificate Object/{c=0}
            c && $1 == "label:" && $2 == a {found=1} END{exit !found}' "$TMP/objects" ||
            fail "no certificate labelled $alias"
    done
}

export_cert() {
    local alias=$1 key
    run keytool -exportcert -rfc "${KS[@]}" -alias "$alias" -file "$TMP/$alias.pem"
    run openssl x509 -noout -text -in "$TMP/$alias.pem"
    grep -q "Subject: CN *= *$alias" "$TMP/out" || fail "subject is not CN=$alias"
    case "$alias" in
        ec1) key="ASN1 OID: prime256v1" ;;
        rsa1) key="Public-Key: (2048 bit)" ;;
    esac
    grep -qF "$key" "$TMP/out" || fail "public key is not '$key'"
    # The self-signature is the token's: openssl checks it with the cert's own key.
    run openssl verify -CAfile "$TMP/$alias.pem" "$TMP/$alias.pem"
    # The certificate object on the token is the same certificate.
    p11 --read-object --type cert --label "$alias" -o "$TMP/$alias.der"
    cmp <(openssl x509 -in "$TMP/$alias.pem" -outform DER) "$TMP/$alias.der" ||
        fail "the token's certificate object differs from keytool's export"
}

make_jar() {
    mkdir -p "$TMP/jar"
    printf 'p11kms interop\n' >"$TMP/jar/hello.txt"
    run jar cf "$TMP/some.jar" -C "$TMP/jar" hello.txt
}

jarsign() {
    local alias=$1 ext sig
    cp "$TMP/some.jar" "$TMP/$alias.jar"
    run jarsigner -keystore NONE "${KS[@]}" "$TMP/$alias.jar" "$alias"
    run jarsigner -verify -verbose -certs "$TMP/$alias.jar"
    grep -q "^jar verified\." "$TMP/out" || fail "jarsigner -verify did not verify"
    grep -Eq '^s.* hello\.txt$' "$TMP/out" || fail "hello.txt's signature is not verified"
    grep -q "Signed by \"CN=$alias\"" "$TMP/out" || fail "not signed by CN=$alias"
    # Independently: the jar's PKCS#7 signature over the .SF file, checked by openssl.
    case "$alias" in
        ec1 | pk1) ext=EC ;;
        rsa1) ext=RSA ;;
    esac
    rm -rf "$TMP/unz-$alias"
    mkdir "$TMP/unz-$alias"
    run unzip -q "$TMP/$alias.jar" -d "$TMP/unz-$alias"
    sig="$TMP/unz-$alias/META-INF/${alias^^}"
    run openssl cms -verify -binary -inform DER -in "$sig.$ext" -content "$sig.SF" \
        -CAfile "$TMP/$alias.pem" -purpose any -out /dev/null
}

# A key pair another tool made (pkcs11-tool; on aws a KMS key, where keytool's own
# keys are not: SunPKCS11 generates session key pairs and copies them to the token,
# and a copied private key stays a software key wrapped by the KEK) with a
# certificate made through the libp11 engine: keytool lists it, jarsigner signs.
foreign_key_entry() {
    local id
    id="$(printf pk1 | od -An -tx1 | tr -d ' \n')"
    p11 --login --pin "$PIN" --keypairgen --key-type EC:prime256v1 --id "$id" --label pk1
    cat >"$TMP/engine.cnf" <<CONF
openssl_conf = openssl_init
[openssl_init]
engines = engine_section
[engine_section]
pkcs11 = pkcs11_section
[pkcs11_section]
engine_id = pkcs11
dynamic_path = $(p11kms_engine_path)
MODULE_PATH = $MODULE
init = 0
CONF
    OPENSSL_CONF="$TMP/engine.cnf" run openssl req -new -x509 -engine pkcs11 -keyform engine \
        -key "pkcs11:token=$TOKEN;object=pk1;type=private;pin-value=$PIN" -sha256 \
        -subj /CN=pk1 -days 2 -out "$TMP/pk1.pem"
    run openssl verify -check_ss_sig -CAfile "$TMP/pk1.pem" "$TMP/pk1.pem"
    openssl x509 -in "$TMP/pk1.pem" -outform DER -out "$TMP/pk1.der"
    p11 --login --pin "$PIN" --write-object "$TMP/pk1.der" --type cert --id "$id" --label pk1
    if on_backend aws gcp; then
        # A KMS key: GetPublicKey (boto3 or REST, not the module) is the certificate's key.
        openssl x509 -in "$TMP/pk1.pem" -noout -pubkey >"$TMP/pk1-cert-pub.pem"
        kms_pubkey pk1 "$TMP/pk1-kms.pem"
        pubkeys_equal "$TMP/pk1-cert-pub.pem" "$TMP/pk1-kms.pem" || fail "pk1 is not the KMS key"
    fi
    run keytool -list "${KS[@]}"
    grep -q "^pk1, PrivateKeyEntry" "$TMP/out" || fail "keytool does not list pk1 as a PrivateKeyEntry"
}

compile_check() {
    mkdir -p "$TMP/classes"
    run javac -Xlint:all -Werror -d "$TMP/classes" "$HERE/P11Check.java"
}

# One P11Check check per step, so each one passes or fails on its own.
p11check() {
    run java -cp "$TMP/classes" P11Check "$CFG" "$PIN" "$@"
    grep -q "check $1: ok" "$TMP/out" || fail "P11Check $1"
}

aes_key_on_token() {
    p11 --login --pin "$PIN" --list-objects --type secrkey
    grep -q "^Secret Key Object; AES length 32" "$TMP/out" || fail "no AES-256 secret key"
    grep -Eq '^ +label: +aes1$' "$TMP/out" || fail "no secret key labelled aes1"
}

# keytool -delete removes the entry's objects (C_DestroyObject); pkcs11-tool agrees.
keytool_delete() {
    run keytool -delete "${KS[@]}" -alias aes1
    run keytool -list "${KS[@]}"
    if grep -q "^aes1," "$TMP/out"; then
        fail "keytool still lists aes1"
    fi
    p11 --login --pin "$PIN" --list-objects --type secrkey
    if grep -Eq '^ +label: +aes1$' "$TMP/out"; then
        fail "the secret key aes1 is still on the token"
    fi
}

# ---- run --------------------------------------------------------------------

echo "interop $ROW: module $MODULE, token dir $TMP"
step "pkcs11-tool: initialise token and user PIN" init_token
step "keytool -list: empty PKCS11 keystore" keytool_list_empty
step "keytool -genkeypair EC secp256r1 (ec1)" genkeypair_ec
step "keytool -genkeypair RSA 2048 (rsa1)" genkeypair_rsa
step "keytool -list: ec1 and rsa1 are PrivateKeyEntry" keytool_list_both
step "pkcs11-tool: keys and certificates on the token" objects_on_token
step "keytool -exportcert ec1; openssl x509 and verify" export_cert ec1
step "keytool -exportcert rsa1; openssl x509 and verify" export_cert rsa1
step "jar cf some.jar" make_jar
step "jarsigner ec1; jarsigner -verify, openssl cms -verify" jarsign ec1
step "jarsigner rsa1; jarsigner -verify, openssl cms -verify" jarsign rsa1
step "pkcs11-tool key pair pk1 + engine-made certificate: keytool lists a PrivateKeyEntry" foreign_key_entry
step "jarsigner pk1 (a KMS key on aws); jarsigner -verify, openssl cms -verify" jarsign pk1
step "javac P11Check.java" compile_check
step "P11Check: SHA256withECDSA on the token, SunEC verifies" p11check ecdsa
step "P11Check: SHA256withRSA on the token, SunRsaSign verifies" p11check rsa
step "P11Check: RSASSA-PSS on the token, SunRsaSign verifies" p11check pss
step "P11Check: RSA decrypt on the token of SunJCE's ciphertext" p11check oaep
step "P11Check: RSA 2048 KeyPairGenerator on the token" p11check rsagen
step "P11Check: AES-256 token key (KeyStore.setEntry), GCM on the token" p11check aes
step "pkcs11-tool: the AES token key aes1 is on the token" aes_key_on_token
step "P11Check: AES-GCM and AES-CBC-PAD on the token against SunJCE" p11check aesx
step "keytool -delete aes1; gone for keytool and pkcs11-tool" keytool_delete

interop_finish

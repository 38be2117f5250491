#!/usr/bin/env bash
# scripts/demo.sh — the main job: build p11kms and drive it with the real tools
# (pkcs11-tool, openssl + the libp11 engine, ssh-keygen) on a throwaway local token.
#
# Environment:
#   P11KMS_MODULE     module to drive instead of building target/release/libp11kms.so
#                     (no cargo build then). Any PKCS#11 module works, e.g. SoftHSM's.
#   P11KMS_DEMO_KEEP  set to 1 to keep the temporary directory (its path is printed).
#   P11KMS_DEMO_STRICT  set to 1 to fail, not skip, a step whose mechanism the module
#                     does not list (scripts/test.sh sets it for p11kms).
#   P11KMS_DEMO_BACKEND  local (default) or aws: an AWS KMS token against the emulator
#                     (scripts/localstack.sh start; AWS_ENDPOINT_URL from its `env`), so
#                     the EC and RSA keys pkcs11-tool makes are KMS keys, the AES key a
#                     KMS-wrapped data key, and signatures are checked against
#                     GetPublicKey's public keys. Or gcp: a Google Cloud KMS token on a
#                     fresh key ring of the Cloud KMS emulator (scripts/gcpkms.sh start;
#                     P11KMS_GCPKMS_ENDPOINT from its `env`): the key pairs are
#                     CryptoKeys (RSA-PSS is its own CryptoKey there: one algorithm per
#                     key), the AES key a data key wrapped by Cloud KMS Encrypt.
#
# Every step prints "==> [n] step"; the first failure stops the demo and names its step.
set -Eeuo pipefail

# shellcheck source=scripts/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

SO_PIN="87654321"
PIN="123456"
TOKEN="demo"
BACKEND="${P11KMS_DEMO_BACKEND:-local}"

STEP=0
STEP_NAME="setup"
step() {
    STEP=$((STEP + 1))
    STEP_NAME="$*"
    echo "==> [$STEP] $*"
}
on_err() {
    local rc=$1 line=$2 n=${#BASH_LINENO[@]}
    # A pipeline's subshell fails first; report once, from the script itself.
    if [[ "$BASHPID" != "$$" ]]; then
        return
    fi
    # Inside helper functions, name the line of the script that called them.
    if ((n > 2)); then
        line=${BASH_LINENO[n - 2]}
    fi
    echo "demo: FAILED at step $STEP ($STEP_NAME): exit $rc at line $line" >&2
}
trap 'on_err $? $LINENO' ERR

# A failed check: say why; the non-zero return trips the ERR trap.
fail() {
    echo "    check failed: $*" >&2
    return 1
}

# A step the module cannot do: a failure when P11KMS_DEMO_STRICT=1, else counted.
SKIPPED=0
skip() {
    if [[ "${P11KMS_DEMO_STRICT:-0}" == 1 ]]; then
        fail "$* (P11KMS_DEMO_STRICT=1)"
    fi
    SKIPPED=$((SKIPPED + 1))
    echo "    skipped: $*"
}

# Show a command, run it, indent its output.
run() {
    local cmd
    printf -v cmd '%q ' "$@"
    printf '    $ %s\n' "${cmd% }"
    "$@" 2>&1 | sed 's/^/    /'
}

# ---- prerequisites ----------------------------------------------------------

p11kms_ensure pkcs11-tool=opensc openssl=openssl engine=libengine-pkcs11-openssl \
    ssh-keygen=openssh-client

if [[ -n "${P11KMS_MODULE:-}" ]]; then
    MODULE="$P11KMS_MODULE"
else
    if ! command -v cargo >/dev/null 2>&1; then
        echo "error: cargo not found: install a Rust toolchain (https://rustup.rs)" >&2
        exit 1
    fi
    echo "==> cargo build --release"
    (cd "$P11KMS_ROOT" && cargo build --release)
    MODULE="$(p11kms_default_module)"
fi
if [[ ! -f "$MODULE" ]]; then
    echo "error: module not found: $MODULE" >&2
    exit 1
fi
MODULE="$(cd "$(dirname "$MODULE")" && pwd)/$(basename "$MODULE")"

ENGINE="$(p11kms_engine_path)"

TMP="$(mktemp -d "${TMPDIR:-/tmp}/p11kms-demo.XXXXXX")"
cleanup() {
    if [[ "${P11KMS_DEMO_KEEP:-0}" == 1 ]]; then
        echo "demo: kept $TMP"
    else
        rm -rf "$TMP"
    fi
}
trap cleanup EXIT

# One Cloud KMS REST call to the emulator (gcp backend): METHOD PATH BODY -> JSON.
gcp_rest() {
    curl -fsS -X "$1" -H 'Content-Type: application/json' ${3:+--data "$3"} "$GCP$2"
}
# A field of a JSON document on stdin (python3: the emulator's own interpreter).
json_field() {
    python3 -c 'import json, sys
v = json.load(sys.stdin)
for k in sys.argv[1].split("."):
    v = v[k]
print(v)' "$1"
}

# The module's configuration: one token whose store lives in the tempdir.
export P11KMS_CONF="$TMP/pkcs11.conf"
if [[ "$BACKEND" == aws ]]; then
    [[ -n "${AWS_ENDPOINT_URL:-}" ]] || fail "P11KMS_DEMO_BACKEND=aws needs the emulator: eval \"\$(scripts/localstack.sh env)\""
    RUN="$(date +%s)-$$"
    KMS_PREFIX="alias/p11kms-demo-$RUN/"
    KEK="$("$P11KMS_ROOT/scripts/localstack.sh" kek "alias/p11kms-demo-kek-$RUN")" || fail "cannot create the KEK in the emulator"
    cat >"$P11KMS_CONF" <<CONF
log_level = "warn"

[[token]]
label = "$TOKEN"
backend = "aws"
region = "${AWS_DEFAULT_REGION:-us-east-1}"
kek = "$KEK"
alias_prefix = "$KMS_PREFIX"
store = "$TMP/demo.sqlite"
CONF
elif [[ "$BACKEND" == gcp ]]; then
    GCP="${P11KMS_GCPKMS_ENDPOINT:-}"
    [[ -n "$GCP" ]] || fail "P11KMS_DEMO_BACKEND=gcp needs the emulator: scripts/gcpkms.sh start; eval \"\$(scripts/gcpkms.sh env)\""
    GCP_LOC="projects/p11kms-demo/locations/global"
    GCP_RING="$GCP_LOC/keyRings/demo-$(date +%s)-$$"
    gcp_rest POST "/v1/$GCP_LOC/keyRings?keyRingId=${GCP_RING##*/}" '{}' >/dev/null ||
        fail "cannot create the key ring in the emulator"
    gcp_rest POST "/v1/$GCP_RING/cryptoKeys?cryptoKeyId=kek" '{"purpose": "ENCRYPT_DECRYPT"}' >/dev/null ||
        fail "cannot create the kek in the emulator"
    cat >"$P11KMS_CONF" <<CONF
log_level = "warn"

[[token]]
label = "$TOKEN"
backend = "gcp"
key_ring = "$GCP_RING"
kek = "kek"
endpoint = "$GCP"
credentials = "anonymous"
store = "$TMP/demo.sqlite"
CONF
else
    cat >"$P11KMS_CONF" <<CONF
log_level = "warn"

[[token]]
label = "$TOKEN"
backend = "local"
store = "$TMP/demo.sqlite"
CONF
fi

# SoftHSM, the reference module, keeps its tokens where SOFTHSM2_CONF says.
# This is setup only: every step below is the same whatever the module.
case "$(basename "$MODULE")" in
    *softhsm*)
        mkdir -p "$TMP/softhsm-tokens"
        export SOFTHSM2_CONF="$TMP/softhsm2.conf"
        printf 'directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n' \
            "$TMP/softhsm-tokens" >"$SOFTHSM2_CONF"
        ;;
esac

# OpenSSL configuration that points the libp11 engine at the module; used only by
# the commands that need the engine (OPENSSL_CONF is set per command).
OSSL_CONF="$TMP/openssl.cnf"
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
keyUsage = critical, keyCertSign, digitalSignature
subjectKeyIdentifier = hash
CONF

echo "demo: module $MODULE"
echo "demo: work dir $TMP"
cd "$TMP"

p11() {
    run pkcs11-tool --module "$MODULE" "$@"
}
# The token is addressed by label after init: SoftHSM moves an initialised token
# to a new slot, and the label is stable on every module.
p11t() {
    p11 --token-label "$TOKEN" "$@"
}
p11u() {
    p11t --login --pin "$PIN" "$@"
}

# ---- the demo -----------------------------------------------------------------

step "list slots (pkcs11-tool -L)"
p11 -L | tee slots.txt
grep -q 'Slot 0' slots.txt || fail "no slot listed"

step "initialise token '$TOKEN' with an SO PIN"
p11 --init-token --label "$TOKEN" --so-pin "$SO_PIN"
p11 -L >slots.txt
grep -Eq "token label +: $TOKEN\$" slots.txt || fail "token '$TOKEN' not listed after init"

step "set the user PIN (SO login, --init-pin)"
p11t --login --login-type so --so-pin "$SO_PIN" --init-pin --pin "$PIN"

step "generate EC P-256 key pair (id 01, label ec1)"
p11u --keypairgen --key-type EC:prime256v1 --id 01 --label ec1

step "generate RSA 2048 key pair (id 02, label rsa1)"
p11u --keypairgen --key-type rsa:2048 --id 02 --label rsa1

# The PSS signature below: rsa1 itself, except on Cloud KMS where a version has one
# algorithm, so pkcs11-tool makes a PSS key pair by its allowed mechanisms.
PSS_ID=02
if [[ "$BACKEND" == gcp ]]; then
    step "generate RSA 2048 PSS key pair (id 04, label rsa1pss, allowed mechanisms PSS)"
    p11u --keypairgen --key-type rsa:2048 --id 04 --label rsa1pss \
        --allowed-mechanisms RSA-PKCS-PSS,SHA256-RSA-PKCS-PSS
    PSS_ID=04
    ENCRYPTS_BEFORE="$(gcp_rest GET /_emulator/calls | python3 -c 'import json, sys; print(json.load(sys.stdin).get("Encrypt", 0))')"
fi

step "generate AES-256 key (id 03, label aes1)"
p11u --keygen --key-type AES:32 --id 03 --label aes1
if [[ "$BACKEND" == gcp ]]; then
    encrypts="$(gcp_rest GET /_emulator/calls | python3 -c 'import json, sys; print(json.load(sys.stdin).get("Encrypt", 0))')"
    ((encrypts == ENCRYPTS_BEFORE + 1)) ||
        fail "aes1 was not wrapped by one Cloud KMS Encrypt ($ENCRYPTS_BEFORE -> $encrypts)"
fi

step "list objects and check all five are there"
p11u -O | tee objects.txt
for want in 'Private Key Object; EC' 'Public Key Object; EC' \
    'Private Key Object; RSA' 'Public Key Object; RSA' 'Secret Key Object; AES'; do
    grep -q "$want" objects.txt || fail "no '$want' in the object list"
done
for label in ec1 rsa1 aes1; do
    grep -Eq "label: +$label\$" objects.txt || fail "no object labelled $label"
done

step "read both public keys and convert them to PEM (RSA: --read-object; EC: CKA_EC_POINT from -O)"
# pkcs11-tool 0.23's --read-object of an EC public key reads freed memory and now and
# then fails with any module: scripts/common.sh, p11kms_read_pubkey.
echo "    (p11kms_read_pubkey --id 01: EC public key from pkcs11-tool -O's EC_PARAMS and EC_POINT)"
p11kms_read_pubkey --id 01 ec.der timeout 60 pkcs11-tool --module "$MODULE" --token-label "$TOKEN" ||
    fail "cannot read ec1's public key"
p11t --read-object --type pubkey --id 02 -o rsa.der
run openssl pkey -pubin -inform DER -in ec.der -out ec.pem
run openssl pkey -pubin -inform DER -in rsa.der -out rsa.pem
if [[ "$PSS_ID" == 02 ]]; then
    cp rsa.pem rsa-pss.pem
else
    p11t --read-object --type pubkey --id "$PSS_ID" -o rsa-pss.der
    run openssl pkey -pubin -inform DER -in rsa-pss.der -out rsa-pss.pem
fi
openssl pkey -pubin -in ec.pem -noout -text | grep -q 'prime256v1' ||
    fail "ec1 public key is not on P-256"
openssl pkey -pubin -in rsa.pem -noout -text | grep -q 'Public-Key: (2048 bit)' ||
    fail "rsa1 public key is not 2048 bits"

if [[ "$BACKEND" == aws ]]; then
    step "the key pairs are KMS keys: GetPublicKey (boto3, not the module) gives the same keys"
    for k in ec1:ec rsa1:rsa; do
        label="${k%%:*}" f="${k##*:}"
        "$P11KMS_ROOT/scripts/localstack.sh" pubkey "$KMS_PREFIX$label" "$f-kms.der" ||
            fail "no KMS key behind alias $KMS_PREFIX$label"
        run openssl pkey -pubin -inform DER -in "$f-kms.der" -out "$f-kms.pem"
        cmp -s <(openssl pkey -pubin -in "$f.pem" -outform DER) <(openssl pkey -pubin -in "$f-kms.pem" -outform DER) ||
            fail "$label: the token's public key is not KMS's"
        # Every signature below is verified against KMS's own public key.
        cp "$f-kms.pem" "$f.pem"
    done
    cp rsa.pem rsa-pss.pem
fi

if [[ "$BACKEND" == gcp ]]; then
    step "the key pairs are CryptoKeys: algorithms and GetPublicKey (REST, not the module) match"
    for k in ec1:ec:EC_SIGN_P256_SHA256 rsa1:rsa:RSA_SIGN_PKCS1_2048_SHA256 \
        rsa1pss:rsa-pss:RSA_SIGN_PSS_2048_SHA256; do
        IFS=: read -r label f alg <<<"$k"
        got="$(gcp_rest GET "/v1/$GCP_RING/cryptoKeys/$label" | json_field versionTemplate.algorithm)" ||
            fail "no CryptoKey $label in the key ring"
        [[ "$got" == "$alg" ]] || fail "CryptoKey $label has algorithm $got, want $alg"
        gcp_rest GET "/v1/$GCP_RING/cryptoKeys/$label/cryptoKeyVersions/1/publicKey" |
            json_field pem >"$f-kms.pem"
        cmp -s <(openssl pkey -pubin -in "$f.pem" -outform DER) <(openssl pkey -pubin -in "$f-kms.pem" -outform DER) ||
            fail "$label: the token's public key is not Cloud KMS's"
        echo "    $label: $alg, public key matches GetPublicKey"
        cp "$f-kms.pem" "$f.pem"
    done
fi

printf 'p11kms demo: the quick brown fox signs over the lazy dog\n' >data.txt

step "sign SHA256-RSA-PKCS and verify with openssl"
p11u --sign --id 02 -m SHA256-RSA-PKCS -i data.txt -o rsa-pkcs.sig
run openssl dgst -sha256 -verify rsa.pem -signature rsa-pkcs.sig data.txt

step "sign SHA256-RSA-PKCS-PSS (MGF1-SHA256, salt 32) and verify with openssl"
# The hash comes from the mechanism (pkcs11-tool refuses --hash-algorithm here);
# the salt length defaults to the digest length.
p11u --sign --id "$PSS_ID" -m SHA256-RSA-PKCS-PSS --mgf MGF1-SHA256 -i data.txt -o rsa-pss.sig
run openssl dgst -sha256 -verify rsa-pss.pem -sigopt rsa_padding_mode:pss \
    -sigopt rsa_pss_saltlen:32 -signature rsa-pss.sig data.txt

step "sign ECDSA over a SHA-256 digest (CKM_ECDSA, DER signature) and verify with openssl"
openssl dgst -sha256 -binary -out data.sha256 data.txt
p11u --sign --id 01 -m ECDSA --signature-format openssl -i data.sha256 -o ec-raw.sig
run openssl dgst -sha256 -verify ec.pem -signature ec-raw.sig data.txt

step "sign ECDSA-SHA256 (DER signature) and verify with openssl"
p11t -M >mechanisms.txt
if grep -Eq '^ +ECDSA-SHA256(,|$)' mechanisms.txt; then
    p11u --sign --id 01 -m ECDSA-SHA256 --signature-format openssl -i data.txt -o ec.sig
    run openssl dgst -sha256 -verify ec.pem -signature ec.sig data.txt
else
    # SoftHSM 2.6 has no CKM_ECDSA_SHA256; p11kms must (test.sh sets STRICT).
    skip "the module does not list ECDSA-SHA256 (pkcs11-tool -M)"
fi

step "AES-CBC-PAD encrypt/decrypt round trip"
IV="$(openssl rand -hex 16)"
# 45 bytes: not a whole number of blocks, so the padding is exercised.
printf 'p11kms demo plaintext, not block aligned....\n' >plain.txt
p11u --encrypt --id 03 -m AES-CBC-PAD --iv "$IV" -i plain.txt -o cipher.bin
p11u --decrypt --id 03 -m AES-CBC-PAD --iv "$IV" -i cipher.bin -o decrypted.txt
[[ "$(stat -c %s cipher.bin)" -eq 48 ]] || fail "ciphertext is $(stat -c %s cipher.bin) bytes, want 48"
cmp -s plain.txt cipher.bin && fail "ciphertext equals plaintext"
cmp plain.txt decrypted.txt || fail "decrypted text differs from the plaintext"

step "self-signed certificate with ec1 through the OpenSSL pkcs11 engine"
KEY_URI="pkcs11:token=$TOKEN;object=ec1;type=private;pin-value=$PIN"
OPENSSL_CONF="$OSSL_CONF" run openssl req -new -x509 -engine pkcs11 -keyform engine \
    -key "$KEY_URI" -sha256 -subj "/CN=p11kms demo" -days 1 -out cert.pem
run openssl x509 -in cert.pem -noout -subject -dates

step "verify the certificate (signature and key)"
run openssl verify -check_ss_sig -CAfile cert.pem cert.pem
openssl x509 -in cert.pem -noout -pubkey >cert-pub.pem
cmp -s <(openssl pkey -pubin -in cert-pub.pem -outform DER) \
    <(openssl pkey -pubin -in ec.pem -outform DER) ||
    fail "the certificate's public key is not ec1's"

step "list the public keys for ssh (ssh-keygen -D)"
run ssh-keygen -D "$MODULE" | tee ssh-keys.txt
grep -Eq '^ +ecdsa-sha2-nistp256 ' ssh-keys.txt || fail "no ecdsa-sha2-nistp256 key"
grep -Eq '^ +ssh-rsa ' ssh-keys.txt || fail "no ssh-rsa key"
# The keys ssh sees are the ones pkcs11-tool read.
for pem in ec.pem rsa.pem; do
    blob="$(ssh-keygen -i -m PKCS8 -f "$pem" | cut -d' ' -f2)"
    grep -qF "$blob" ssh-keys.txt || fail "ssh-keygen -D does not list the key in $pem"
done

if ((SKIPPED > 0)); then
    echo "demo: all $STEP steps passed ($SKIPPED skipped)"
else
    echo "demo: all $STEP steps passed"
fi

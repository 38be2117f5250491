#!/usr/bin/env bash
# scripts/interop/python.sh — interop row "python": drive p11kms from Python with
# PyKCS11 (scripts/interop/p11check.py) on a throwaway local token, as a scripting
# user would, and check every result with the `cryptography` package, openssl and
# pkcs11-tool, never with the token itself.
#
# Environment:
#   P11KMS_MODULE           the module (default <repo>/target/release/libp11kms.so)
#   P11KMS_INTEROP_KEEP     1 keeps the temporary directory (its path is printed)
#   P11KMS_INTEROP_TIMEOUT  seconds any one command may take (default 120)
#   P11KMS_INTEROP_VENV     the virtualenv to use or make (default
#                           ~/.cache/p11kms/interop-python-<python version>)
#
# Prints "==> [n] step" per step, runs every step even after a failure, and ends with
# "interop python: N passed, 0 failed" (exit 0), or names the failed steps (exit 1).

# The step functions are called through `step`, which shellcheck cannot follow.
# shellcheck disable=SC2317
set -euo pipefail

ROW="python"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=scripts/common.sh
. "$HERE/../common.sh"
# shellcheck source=scripts/interop/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SO_PIN="87654321"
PIN="123456"
TOKEN="interop"
TIMEOUT="${P11KMS_INTEROP_TIMEOUT:-120}"
PY_PACKAGES=(PyKCS11 cryptography)

p11kms_ensure pkcs11-tool=opensc openssl=openssl timeout=coreutils python3=python3
# Debian's python3 makes no virtualenv without python3-venv (ensurepip).
if ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
    p11kms_ensure "no-ensurepip=python3-venv"
fi

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

PYVER="$(python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
VENV="${P11KMS_INTEROP_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/p11kms/interop-python-$PYVER}"
PY="$VENV/bin/python"
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1
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

venv_ok() {
    [[ -x "$PY" ]] && "$PY" -c 'import PyKCS11, cryptography' >/dev/null 2>&1
}

# A cached virtualenv with PyKCS11 and cryptography; PyKCS11 builds from source
# (swig, a C compiler) only where PyPI has no wheel for this Python.
make_venv() {
    # Downloads, and maybe a build: more time than one token operation needs.
    TIMEOUT=$((TIMEOUT > 600 ? TIMEOUT : 600))
    if venv_ok; then
        echo "    using $VENV"
    else
        if [[ -e "$VENV" && ! -e "$VENV/pyvenv.cfg" ]]; then
            fail "$VENV exists and is not a virtualenv"
        fi
        rm -rf "$VENV"
        mkdir -p "$(dirname "$VENV")"
        run python3 -m venv "$VENV"
        if ! run "$PY" -m pip install -q "${PY_PACKAGES[@]}"; then
            echo "    no wheel installed: installing swig and a compiler, then retrying"
            p11kms_ensure swig=swig gcc=gcc
            run "$PY" -m pip install -q "${PY_PACKAGES[@]}"
        fi
    fi
    run "$PY" -c 'import PyKCS11, cryptography; print("cryptography", cryptography.__version__)'
    run "$PY" -m pip list --format=freeze
    grep -Ei '^(pykcs11|cryptography)==' "$TMP/out" || fail "packages missing from the venv"
}

# One p11check.py check per step, so each one passes or fails on its own.
p11check() {
    run "$PY" "$HERE/p11check.py" --module "$MODULE" --token "$TOKEN" --pin "$PIN" \
        --out "$TMP" "$@"
    # What p11check.py skipped on this backend, for the row's closing lines.
    sed -n 's/^ *SKIPPED on [a-z]*: /['"$STEP"'] /p' "$TMP/out" >>"$INTEROP_SKIPS"
    grep -q "check $1: ok" "$TMP/out" || fail "p11check $1"
}

# The objects p11check.py made, as pkcs11-tool sees them.
objects_on_token() {
    local want
    p11 --login --pin "$PIN" --list-objects
    for want in "Private Key Object; EC|py-ec" "Public Key Object; EC|py-ec" \
        "Private Key Object; RSA|py-rsa" "Public Key Object; RSA 2048 bits|py-rsa" \
        "Secret Key Object; AES length 32|py-aes" "Secret Key Object; AES length 32|py-aes-x"; do
        awk -v head="${want%|*}" -v label="${want#*|}" '
            /^[A-Z]/ { inobj = (index($0, head) == 1) }
            inobj && $1 == "label:" && $2 == label { found = 1 }
            END { exit !found }' "$TMP/out" || fail "no '${want%|*}' labelled ${want#*|}"
    done
}

# pkcs11-tool reads each public key object, openssl converts it; it must be the key
# p11check.py built from CKA_EC_POINT / CKA_MODULUS.
pubkeys_match() {
    local label
    for label in py-ec py-rsa; do
        p11kms_read_pubkey --label "$label" "$TMP/$label.pub.der" \
            timeout 60 pkcs11-tool --module "$MODULE" --token-label "$TOKEN"
        run openssl pkey -pubin -inform DER -in "$TMP/$label.pub.der" -out "$TMP/$label.tool.pem"
        cmp "$TMP/$label.tool.pem" "$TMP/$label.pub.pem" ||
            fail "$label: pkcs11-tool's public key differs from the one Python read"
        if on_backend aws gcp; then
            # A KMS key: GetPublicKey (boto3 or REST, not the module) is the same key.
            kms_pubkey "$label" "$TMP/$label.kms.pem"
            pubkeys_equal "$TMP/$label.kms.pem" "$TMP/$label.pub.pem" || fail "$label is not the KMS key"
        fi
    done
}

openssl_verify() {
    local label=$1 sig=$2
    shift 2
    run openssl dgst -sha256 "$@" -verify "$TMP/$label.pub.pem" -signature "$TMP/$sig" "$TMP/data"
    grep -q "^Verified OK" "$TMP/out" || fail "openssl does not verify $sig"
}

ecdsa() {
    p11check ecdsa
    openssl_verify py-ec py-ec.sig.der
}

rsa_pkcs() {
    p11check rsa
    openssl_verify py-rsa py-rsa.sig
}

# On gcp p11check.py signs PSS with py-rsa-pss, a pair it made with
# CKA_ALLOWED_MECHANISMS naming only PSS: Cloud KMS (REST) says what that version is.
pss() {
    p11check pss
    if on_backend gcp; then
        [[ "$(gcp_algorithm py-rsa-pss)" == RSA_SIGN_PSS_2048_SHA256 ]] ||
            fail "py-rsa-pss is not an RSA_SIGN_PSS_2048_SHA256 version: $(gcp_algorithm py-rsa-pss)"
    fi
}

# ---- run --------------------------------------------------------------------

echo "interop $ROW: module $MODULE, token dir $TMP"
step "pkcs11-tool: initialise token and user PIN" init_token
step "python venv with PyKCS11 and cryptography" make_venv
step "PyKCS11: generate EC P-256 token key pair py-ec" p11check genec
step "PyKCS11: generate RSA 2048 token key pair py-rsa" p11check genrsa
step "PyKCS11: generate AES-256 token keys py-aes, py-aes-x" p11check genaes
step "pkcs11-tool: the Python-made objects are on the token" objects_on_token
step "PyKCS11: read the public keys from the token" p11check pubkeys
step "pkcs11-tool + openssl: the same public keys" pubkeys_match
step "PyKCS11: ECDSA sign; cryptography and openssl verify" ecdsa
step "PyKCS11: SHA256-RSA-PKCS sign; cryptography and openssl verify" rsa_pkcs
step "PyKCS11: RSA-PSS sign; cryptography verifies" pss
step "PyKCS11: RSA-OAEP decrypt of cryptography's ciphertext" p11check oaep
step "PyKCS11: AES-GCM on the token against cryptography" p11check aesgcm
step "PyKCS11: AES-CBC-PAD on the token against cryptography" p11check aescbc
step "PyKCS11: imported AES key, GCM and CBC-PAD against cryptography" p11check aesimport
step "PyKCS11: verify and encrypt on the token with cryptography's public keys" p11check verify

interop_finish

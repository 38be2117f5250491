# shellcheck shell=bash
# Helpers shared by scripts/demo.sh and scripts/test.sh. Sourced, not run.

# Repository root (the parent of scripts/).
P11KMS_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

# Where `cargo build --release` puts the module.
p11kms_default_module() {
    printf '%s/release/libp11kms.so\n' "${CARGO_TARGET_DIR:-$P11KMS_ROOT/target}"
}

# The libp11 engine's file, or nothing when it is not installed.
p11kms_engine_path() {
    local dir
    dir="$(openssl version -e 2>/dev/null | sed -n 's/^ENGINESDIR: "\(.*\)"$/\1/p')"
    if [[ -n "$dir" && -e "$dir/pkcs11.so" ]]; then
        printf '%s/pkcs11.so\n' "$dir"
    fi
}

# Is the Debian package that provides this probe present? One probe per package:
# a command name, or "engine" for libengine-pkcs11-openssl, or "softhsm".
p11kms_have() {
    case "$1" in
        engine) [[ -n "$(p11kms_engine_path)" ]] ;;
        softhsm) [[ -e /usr/lib/softhsm/libsofthsm2.so ]] ;;
        p11kitproxy) compgen -G "/usr/lib/*/p11-kit-proxy.so" >/dev/null ;;
        *) command -v "$1" >/dev/null 2>&1 ;;
    esac
}

# p11kms_ensure PROBE=PACKAGE ...
# Installs the packages whose probe fails: with apt-get when root (apt-get update
# first, only when something is missing), else prints what to install and exits 1.
p11kms_ensure() {
    local pair probe pkg missing=()
    for pair in "$@"; do
        probe="${pair%%=*}"
        pkg="${pair#*=}"
        if ! p11kms_have "$probe"; then
            missing+=("$pkg")
        fi
    done
    if [[ ${#missing[@]} -eq 0 ]]; then
        return 0
    fi
    if [[ "$(id -u)" -ne 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
        echo "error: missing packages: ${missing[*]}" >&2
        echo "install them first, e.g.: sudo apt-get install ${missing[*]}" >&2
        exit 1
    fi
    echo "==> installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null
}

# p11kms_der TAG HEX: the DER TLV (as hex) of a value given as hex.
p11kms_der() {
    local n=$((${#2} / 2))
    if ((n < 128)); then
        printf '%s%02x%s' "$1" "$n" "$2"
    elif ((n < 256)); then
        printf '%s81%02x%s' "$1" "$n" "$2"
    else
        printf '%s82%04x%s' "$1" "$n" "$2"
    fi
}

# p11kms_read_pubkey --id ID|--label LABEL OUT PKCS11-TOOL...: the public-key object so
# named, as a DER SubjectPublicKeyInfo in OUT; PKCS11-TOOL... is the pkcs11-tool command
# with --module and --token-label. RSA keys come from pkcs11-tool --read-object. EC keys
# come from its --list-objects output (CKA_EC_PARAMS, CKA_EC_POINT) made into an SPKI
# here: pkcs11-tool 0.23's --read-object of an EC public key reads freed memory (under
# valgrind, with SoftHSM as with p11kms: the OSSL_PARAMs it got from EVP_PKEY_export are
# freed before EVP_PKEY_fromdata uses them), so it fails with "cannot create EVP_PKEY" on
# every P-384 key and on some P-256 and P-521 keys, by heap layout. openssl then checks
# that the key parses, and the caller compares it with what another tool exported.
p11kms_read_pubkey() {
    local sel=$1 val=$2 out=$3 listing block params point hdr
    shift 3
    listing="$("$@" --list-objects --type pubkey </dev/null 2>/dev/null)" || return 1
    # The object's block: from its "... Object;" line to the next one.
    block="$(awk -v sel="$sel" -v val="$val" '
        /^[A-Za-z].* Object;/ { if (hit) exit; buf = "" }
        { buf = buf $0 "\n" }
        sel == "--id" && $1 == "ID:" && $2 == val { hit = 1 }
        sel == "--label" && $1 == "label:" && substr($0, index($0, $2)) == val { hit = 1 }
        END { if (hit) printf "%s", buf }' <<<"$listing")"
    if [[ -z $block ]]; then
        echo "p11kms_read_pubkey: no public key with $sel $val" >&2
        return 1
    fi
    if [[ $block != "Public Key Object; EC "* ]]; then
        "$@" --read-object --type pubkey "$sel" "$val" -o "$out" </dev/null || return 1
    else
        params="$(awk '$1 == "EC_PARAMS:" { print $2 }' <<<"$block")"
        point="$(awk '$1 == "EC_POINT:" { print $2 }' <<<"$block")"
        # CKA_EC_POINT is a DER OCTET STRING holding 04||X||Y: take its content.
        case "$point" in
            0481*) hdr=6 ;;
            04*) hdr=4 ;;
            *) hdr=0 ;;
        esac
        if ((hdr == 0)) || [[ $(p11kms_der 04 "${point:hdr}") != "$point" || -z $params ]]; then
            echo "p11kms_read_pubkey: $sel $val: CKA_EC_POINT is not a DER OCTET STRING: $point" >&2
            return 1
        fi
        # SEQUENCE { SEQUENCE { id-ecPublicKey, the curve }, BIT STRING 00||point }
        perl -e 'print pack("H*", $ARGV[0])' \
            "$(p11kms_der 30 "$(p11kms_der 30 "06072a8648ce3d0201$params")$(p11kms_der 03 "00${point:hdr}")")" >"$out"
    fi
    openssl pkey -pubin -inform DER -in "$out" -noout 2>/dev/null || {
        echo "p11kms_read_pubkey: $sel $val: openssl cannot parse the public key" >&2
        return 1
    }
}

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

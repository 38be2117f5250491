#!/usr/bin/env bash
# scripts/install-p11-kit-module.sh — register libp11kms.so with p11-kit, so that
# GnuTLS (p11tool, certtool, gnutls-cli/serv), p11-kit-proxy.so and everything else
# built on p11-kit see its tokens.
#
# Usage:
#   scripts/install-p11-kit-module.sh MODULE_PATH      install (or replace)
#   scripts/install-p11-kit-module.sh --remove         uninstall
#
# Writes scripts/interop/p11kms.module, with MODULE_PATH filled in, to
# $P11KMS_P11KIT_MODULE_DIR/p11kms.module (default /etc/pkcs11/modules, which needs
# root). p11-kit ignores per-user module files (~/.config/pkcs11/modules) in
# programs running as root, so the system directory is the one that works for all.
# P11KMS_P11KIT_MODULE_DIR=~/.config/pkcs11/modules installs for one (non-root) user.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
template="$here/interop/p11kms.module"
dir="${P11KMS_P11KIT_MODULE_DIR:-/etc/pkcs11/modules}"
dest="$dir/p11kms.module"

usage() {
    echo "usage: $0 MODULE_PATH | --remove" >&2
    exit 2
}

[[ $# -eq 1 ]] || usage

if [[ "$1" == "--remove" ]]; then
    rm -f "$dest"
    echo "removed $dest"
    exit 0
fi
[[ "$1" != -* ]] || usage

module="$1"
if [[ ! -f "$module" ]]; then
    echo "error: module not found: $module" >&2
    exit 1
fi
# p11-kit resolves a relative path against its own module directory: store an
# absolute one.
module="$(cd "$(dirname "$module")" && pwd)/$(basename "$module")"
if [[ "$module" == *$'\n'* || "$module" =~ ^[[:space:]]|[[:space:]]$ ]]; then
    echo "error: module path must not contain a newline or start or end with space" >&2
    exit 1
fi

content="$(<"$template")"
[[ "$content" == *@P11KMS_MODULE@* ]] || {
    echo "error: $template has no @P11KMS_MODULE@ placeholder" >&2
    exit 1
}
content="${content//@P11KMS_MODULE@/$module}"

mkdir -p "$dir"
# Write next to the destination and rename: p11-kit never reads half a file.
tmp="$(mktemp "$dir/.p11kms.module.XXXXXX")"
trap 'rm -f "$tmp"' EXIT
printf '%s\n' "$content" >"$tmp"
chmod 0644 "$tmp"
mv -f "$tmp" "$dest"
trap - EXIT
echo "installed $dest (module: $module)"

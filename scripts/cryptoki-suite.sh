#!/usr/bin/env bash
# The rust-cryptoki crate's own integration tests (tests/*.rs of the crates.io package
# cryptoki 0.12.1: basic, allowed_mechanisms, wycheproof, ml_dsa, ml_kem, slh_dsa)
# against a PKCS#11 module, with the tests named in scripts/cryptoki-suite.skip left out.
#
#   P11KMS_MODULE        module to test (default: target/release/libp11kms.so; no build).
#                        A path containing "softhsm" (e.g. /usr/lib/softhsm/libsofthsm2.so)
#                        runs the suite against SoftHSM, the reference, with no skip list
#                        (the tests have SoftHSM branches of their own).
#   CRYPTOKI_SUITE_SKIP  skip file (default: scripts/cryptoki-suite.skip for p11kms,
#                        none for SoftHSM; "none" for no skips at all)
#   CRYPTOKI_SUITE_KEEP=1  keep the temporary directory (token store, config, logs)
#
# How: a throwaway Cargo project that depends on cryptoki =0.12.1 makes cargo unpack the
# crate into its registry (cargo metadata); the crate directory is copied to
# target/cryptoki-suite/crate (a stable path, so the compiled dev-dependencies are reused
# from run to run; CARGO_TARGET_DIR is target/cryptoki-suite/target) and its tests are
# built with the crate's own Cargo.lock (--locked) and run with --test-threads=1, since
# every test re-initialises the one token (C_InitToken with SO PIN "abcdef654321", then
# C_InitPIN "fedcba123456", as tests/common/mod.rs does). The module gets a throwaway
# configuration: one local token whose store lives in a temporary directory.
#
# Skip file: one test name per line (the exact libtest name; names are unique across
# the test binaries), then "#" and the reason. Blank lines and lines starting with "#"
# are comments. An entry that names no test is an error (the list must not rot).
#
# Exit status: 0 when every test that ran passed; non-zero on a failure, a crash, a
# build failure, a time-out, or a stale skip entry.
set -uo pipefail

# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

CRATE_VERSION=0.12.1
MODULE="${P11KMS_MODULE:-$(p11kms_default_module)}"
SUITE_DIR="$P11KMS_ROOT/target/cryptoki-suite"
BUILD_LIMIT=1800 # seconds: cryptoki and its dev-dependencies, from cold, on 2 cores
RUN_LIMIT=900    # seconds: all test binaries (about 40 s against p11kms)

if ! command -v cargo >/dev/null 2>&1; then
    echo "error: cargo not found: install a Rust toolchain (https://rustup.rs)" >&2
    exit 1
fi
if [[ ! -e "$MODULE" ]]; then
    echo "error: module $MODULE not found (build it: cargo build --release)" >&2
    exit 1
fi
MODULE="$(cd "$(dirname "$MODULE")" && pwd)/$(basename "$MODULE")"

SOFTHSM=0
[[ "$MODULE" == *softhsm* ]] && SOFTHSM=1
if [[ -n "${CRYPTOKI_SUITE_SKIP:-}" ]]; then
    SKIP_FILE="$CRYPTOKI_SUITE_SKIP"
elif [[ $SOFTHSM -eq 1 ]]; then
    SKIP_FILE=none
else
    SKIP_FILE="$P11KMS_ROOT/scripts/cryptoki-suite.skip"
fi

WORK="$(mktemp -d "${TMPDIR:-/tmp}/p11kms-cryptoki-suite.XXXXXX")"
# shellcheck disable=SC2317 # run by the EXIT trap
cleanup() {
    if [[ "${CRYPTOKI_SUITE_KEEP:-0}" == 1 ]]; then
        echo "kept $WORK"
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT

# --- the crate's source, unpacked by cargo itself -----------------------------------
echo "==> cryptoki $CRATE_VERSION test suite against $MODULE"
mkdir -p "$WORK/fetch/src"
cat >"$WORK/fetch/Cargo.toml" <<EOF
[package]
name = "cryptoki-suite-fetch"
version = "0.0.0"
edition = "2021"
publish = false

[dependencies]
cryptoki = "=$CRATE_VERSION"

[workspace]
EOF
: >"$WORK/fetch/src/lib.rs"
# cargo metadata resolves the dependency and unpacks its source into the registry;
# its manifest_path is where.
if ! manifest="$(cd "$WORK/fetch" && cargo metadata --format-version 1 2>"$WORK/fetch.log" |
    grep -o "\"manifest_path\":\"[^\"]*/cryptoki-$CRATE_VERSION/Cargo.toml\"" | head -1 |
    sed 's/^"manifest_path":"//; s/"$//')" || [[ -z "$manifest" ]]; then
    echo "error: could not fetch cryptoki $CRATE_VERSION:" >&2
    cat "$WORK/fetch.log" >&2
    exit 1
fi
SRC="$(dirname "$manifest")"
if [[ ! -d "$SRC/tests/common" ]]; then
    echo "error: $SRC has no tests/common (not the crates.io package?)" >&2
    exit 1
fi
CRATE="$SUITE_DIR/crate"
mkdir -p "$SUITE_DIR"
rm -rf "$CRATE"
cp -rp "$SRC" "$CRATE" # -p: unchanged mtimes, so cargo reuses the last build
chmod -R u+w "$CRATE"
export CARGO_TARGET_DIR="$SUITE_DIR/target"

# --- build --------------------------------------------------------------------------
echo "==> building the tests (cargo test --release --no-run; a few minutes from cold)"
T0=$SECONDS
(cd "$CRATE" && timeout "$BUILD_LIMIT" cargo test --release --locked --test '*' --no-run) \
    >"$WORK/build.log" 2>&1
rc=$?
if [[ $rc -ne 0 ]]; then
    tail -n 40 "$WORK/build.log"
    [[ $rc -eq 124 ]] && echo "error: build timed out after ${BUILD_LIMIT}s" >&2
    echo "error: building cryptoki's tests failed (exit $rc)" >&2
    exit 1
fi
echo "    built in $((SECONDS - T0)) s"

# --- skip list ----------------------------------------------------------------------
SKIPS=()
declare -A REASON=()
if [[ "$SKIP_FILE" != none ]]; then
    if [[ ! -r "$SKIP_FILE" ]]; then
        echo "error: skip file $SKIP_FILE not readable" >&2
        exit 1
    fi
    while IFS= read -r line || [[ -n "$line" ]]; do
        [[ "$line" =~ ^[[:space:]]*(#|$) ]] && continue
        name="$(sed 's/#.*//; s/[[:space:]]*$//; s/^[[:space:]]*//' <<<"$line")"
        why="$(sed -n 's/^[^#]*#[[:space:]]*//p' <<<"$line")"
        if [[ -z "$why" || "$name" == *[[:space:]]* ]]; then
            echo "error: $SKIP_FILE: want 'test_name  # reason', got: $line" >&2
            exit 1
        fi
        SKIPS+=("$name")
        REASON[$name]="$why"
    done <"$SKIP_FILE"
fi

# Every skip entry must name a test of this crate version.
(cd "$CRATE" && cargo test --release --locked --test '*' -q -- --list --format terse) \
    2>/dev/null | sed -n 's/: test$//p' | sort >"$WORK/all-tests"
if [[ ! -s "$WORK/all-tests" ]]; then
    echo "error: could not list the tests" >&2
    exit 1
fi
stale=0
for name in "${SKIPS[@]}"; do
    if ! grep -qxF -- "$name" "$WORK/all-tests"; then
        echo "error: skip entry '$name' names no test of cryptoki $CRATE_VERSION" >&2
        stale=1
    fi
done
[[ $stale -eq 0 ]] || exit 1

# --- the module's throwaway configuration -------------------------------------------
mkdir -p "$WORK/token"
cat >"$WORK/p11kms.conf" <<EOF
log_level = "warn"

[[token]]
label = "cryptoki"
backend = "local"
store = "$WORK/token/t.sqlite"
EOF
printf 'directories.tokendir = %s/token\nobjectstore.backend = file\n' "$WORK" \
    >"$WORK/softhsm2.conf"
export P11KMS_CONF="$WORK/p11kms.conf" SOFTHSM2_CONF="$WORK/softhsm2.conf"
export TEST_PKCS11_MODULE="$MODULE"
unset TEST_PRETEND_LIBRARY 2>/dev/null || true

# --- run ----------------------------------------------------------------------------
args=(--test-threads=1 --exact)
for name in "${SKIPS[@]}"; do
    args+=(--skip "$name")
done
echo "==> running $(wc -l <"$WORK/all-tests") tests, ${#SKIPS[@]} skipped (--test-threads=1)"
T0=$SECONDS
(cd "$CRATE" && timeout "$RUN_LIMIT" cargo test --release --locked --test '*' --no-fail-fast \
    -- "${args[@]}") >"$WORK/run.log" 2>&1
rc=$?
cp "$WORK/run.log" "$SUITE_DIR/last-run.log"

grep -E '^test .* \.\.\. |^     Running ' "$WORK/run.log" | grep -v '^test result' |
    sed 's/^     Running \(tests\/[^ ]*\).*/-- \1/; s/^test /  /'
echo
# Failure details: each failed test's panic message, without backtraces.
if grep -q '^---- ' "$WORK/run.log"; then
    echo "==> failures"
    # At most 20 lines per test (the Wycheproof tests print one line per vector).
    awk '/^---- /{p=1; n=0} /^(failures:|stack backtrace:|note: )/{p=0}
         p && NF && n++ < 20 {print "    " $0}
         p && NF && n == 21 {print "    ... (more in the full log)"}' "$WORK/run.log"
    echo
fi

# Totals over every test binary ("filtered out" are the skip-list entries).
read -r passed failed ignored filtered < <(grep -E '^test result:' "$WORK/run.log" |
    sed -E 's/.* ([0-9]+) passed; ([0-9]+) failed; ([0-9]+) ignored; [0-9]+ measured; ([0-9]+) filtered out.*/\1 \2 \3 \4/' |
    awk '{p+=$1; f+=$2; i+=$3; s+=$4} END {print p+0, f+0, i+0, s+0}')
# A test binary that dies (a signal, an abort) prints no "test result" line; cargo
# reports it as: process didn't exit successfully: `.../deps/NAME-HASH ...` (signal: ...).
# shellcheck disable=SC2016 # the backquote is cargo's, not a command substitution
crashed="$(sed -nE 's/.*process didn.t exit successfully: `[^ `]*\/deps\/([a-z_]+)-[0-9a-f]+ .*\((.*)\)$/\1 (\2)/p' \
    "$WORK/run.log" | sort -u)"
binaries="$(grep -c '^     Running ' "$WORK/run.log")"
results="$(grep -c '^test result:' "$WORK/run.log")"

echo "==> summary: cryptoki $CRATE_VERSION tests against $MODULE ($((SECONDS - T0)) s)"
echo "    $passed passed, $failed failed, $ignored ignored (#[ignore] upstream), $filtered skipped (skip list: ${#SKIPS[@]} entries)"
if [[ ${#SKIPS[@]} -gt 0 ]]; then
    for name in "${SKIPS[@]}"; do
        printf '    skip %s: %s\n' "$name" "${REASON[$name]}"
    done
fi
status=0
if [[ $rc -eq 124 ]]; then
    echo "    TIMED OUT after ${RUN_LIMIT}s"
    status=1
fi
if [[ "$results" -lt "$binaries" ]]; then
    echo "    CRASHED: $((binaries - results)) of $binaries test binaries died before finishing:"
    while IFS= read -r line; do
        echo "      $line"
    done <<<"${crashed:-?}"
    # The test running when it died is the last "test NAME ... " line without a result.
    grep -E '^test [a-z0-9_]+ \.\.\. (error: |$)' "$WORK/run.log" |
        sed -E 's/^test ([a-z0-9_]+) .*/      during: \1/' | sort -u
    status=1
fi
if [[ $failed -ne 0 || $rc -ne 0 ]]; then
    status=1
fi
echo "    full log: $SUITE_DIR/last-run.log"
exit "$status"

#!/usr/bin/env bash
# OpenSC's own module tests (pkcs11-tool --test, --test-ec, --test-fork,
# --test-threads) against a PKCS#11 module, on a fresh throwaway token each round.
#
#   P11KMS_MODULE   module to test (default: target/release/libp11kms.so; no build)
#   P11KMS_RUNS     rounds (default 3); each round starts from a new token
#   P11KMS_KEEP=1   keep the temporary directory
#
# Each round: initialise a token and the user PIN, then
#   --test on the empty token, --test-ec (P-256 key pair, CKA_ID/LABEL/SUBJECT
#   changes, ECDSA-SHA1 sign, destroy), --test with an RSA-2048 key (RSA-PKCS and
#   SHA1-RSA-PKCS verify, RSA-PKCS and OAEP decrypt), --test-fork (C_Initialize in
#   a forked child) alone and with --login --test, and --test-threads specs with and
#   without CKF_OS_LOCKING_OK (threads calling C_Initialize concurrently with main,
#   then C_GetInfo, C_GetSlotList, C_GetTokenInfo).
#
# A step fails on a non-zero exit (a crash included), on a missing success marker
# ("No errors", "==> OK", "test_threads cleanup finished"), on an "error:" line from
# pkcs11-tool, on a thread ending with anything other than CKR_OK or
# CKR_CRYPTOKI_ALREADY_INITIALIZED (the loser of the C_Initialize race), on an
# Error line from p11kms's log, or when it takes longer than its time limit.
#
# The module gets a throwaway configuration either way: P11KMS_CONF for p11kms,
# SOFTHSM2_CONF for SoftHSM. SoftHSM 2.6.1 is expected to fail --test with an RSA
# key (no OAEP label support), --test-ec (no CKM_ECDSA_SHA1), --test-fork
# (CKR_CRYPTOKI_ALREADY_INITIALIZED in the child) and the concurrent --test-threads
# steps (it crashes) — the point of running it against SoftHSM is to see that.
set -uo pipefail

# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

MODULE="${P11KMS_MODULE:-$(p11kms_default_module)}"
RUNS="${P11KMS_RUNS:-3}"
PIN=123456
SO_PIN=12345678
STEP_LIMIT=40 # seconds; pkcs11-tool itself sleeps 30 s when a test thread outlives main

p11kms_ensure pkcs11-tool=opensc

if [[ ! -e "$MODULE" ]]; then
    echo "error: module $MODULE not found (build it: cargo build --release)" >&2
    exit 1
fi
if ! [[ "$RUNS" =~ ^[1-9][0-9]*$ ]]; then
    echo "error: P11KMS_RUNS must be a positive integer, not '$RUNS'" >&2
    exit 1
fi

WORK="$(mktemp -d "${TMPDIR:-/tmp}/p11kms-tool-tests.XXXXXX")"
cleanup() {
    if [[ "${P11KMS_KEEP:-0}" == 1 ]]; then
        echo "kept $WORK"
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT

# Both modules get a private configuration; each ignores the other's variable.
export P11KMS_CONF="$WORK/p11kms.conf"
export SOFTHSM2_CONF="$WORK/softhsm2.conf"
unset OPENSC_CONF P11_KIT_CONF 2>/dev/null || true

PASS=0
FAIL=0
FAILED=()
T0=$SECONDS

p11() { pkcs11-tool --module "$MODULE" "$@"; }

# A fresh token with the user PIN set, in a new directory per round.
fresh_token() {
    local dir="$WORK/round$1"
    mkdir -p "$dir/softhsm"
    cat >"$P11KMS_CONF" <<EOF
log_level = "warn"

[[token]]
label = "tooltest"
backend = "local"
store = "$dir/tooltest.sqlite"
EOF
    printf 'directories.tokendir = %s/softhsm\nobjectstore.backend = file\n' "$dir" >"$SOFTHSM2_CONF"
    p11 --slot-index 0 --init-token --label tooltest --so-pin "$SO_PIN" >"$dir/init.log" 2>&1 &&
        p11 --token-label tooltest --login --login-type so --so-pin "$SO_PIN" \
            --init-pin --pin "$PIN" >>"$dir/init.log" 2>&1
}

# check NAME LOG RC MARKER: judge one finished step.
check() {
    local name="$1" log="$2" rc="$3" marker="$4" why=()
    if [[ "$rc" -eq 124 ]]; then
        why+=("timed out after ${STEP_LIMIT}s")
    elif [[ "$rc" -ne 0 ]]; then
        why+=("exit status $rc")
    fi
    if [[ -n "$marker" ]] && ! grep -qF -- "$marker" "$log"; then
        why+=("no '$marker'")
    fi
    if grep -qE '^(error|Aborting)' "$log"; then
        why+=("$(grep -m1 -E '^error' "$log" || echo Aborting)")
    fi
    if grep -qE '^p11kms\[[0-9]+\] Error' "$log"; then
        why+=("module logged: $(grep -m1 -E '^p11kms\[[0-9]+\] Error' "$log")")
    fi
    # --test-threads: every thread's final state line.
    local bad
    bad="$(grep -E '^test_threads thread:[0-9]+ state:' "$log" | tail -n "$(grep -cE '^Test thread [0-9]+ started' "$log")" |
        grep -vE 'state:-1, rv:(CKR_OK|CKR_CRYPTOKI_ALREADY_INITIALIZED)$' || true)"
    if [[ -n "$bad" ]]; then
        why+=("thread: $(head -1 <<<"$bad")")
    fi
    if grep -qE "^Test thread [0-9]+ Unknown test" "$log"; then
        why+=("bad thread spec")
    fi
    if [[ ${#why[@]} -eq 0 ]]; then
        PASS=$((PASS + 1))
        printf '  ok    %s\n' "$name"
    else
        FAIL=$((FAIL + 1))
        FAILED+=("$name: ${why[*]}")
        printf '  FAIL  %s: %s (log: %s)\n' "$name" "${why[*]}" "$log"
    fi
    # Anything the module itself logged, pass or fail.
    grep -E '^p11kms\[[0-9]+\] ' "$log" | sort -u | sed 's/^/        module: /' || true
}

# step ROUND NAME MARKER ARGS...: run pkcs11-tool once with a time limit.
step() {
    local round="$1" name="$2" marker="$3" rc log
    shift 3
    log="$WORK/round$round/$(tr -c 'A-Za-z0-9_-' _ <<<"$name").log"
    timeout "$STEP_LIMIT" pkcs11-tool --module "$MODULE" "$@" >"$log" 2>&1
    rc=$?
    check "$name" "$log" "$rc" "$marker"
}

# Thread specs: two-letter commands (IN C_Initialize(NULL), IL C_Initialize with
# CKF_OS_LOCKING_OK, GI C_GetInfo, SL C_GetSlotList, Tn C_GetTokenInfo of slot n,
# Pn sleep n s), one --test-threads per thread. Every thread starts by initialising,
# since the threads start before main's own C_Initialize; main runs --login --test so
# that it outlives the threads (else pkcs11-tool sleeps 30 s before joining them).
thread_args() {
    local spec
    for spec in "$@"; do
        printf -- '--test-threads\n%s\n' "$spec"
    done
}

echo "==> pkcs11-tool tests: $MODULE, $RUNS round(s)"
for ((r = 1; r <= RUNS; r++)); do
    echo "-- round $r"
    if ! fresh_token "$r"; then
        FAIL=$((FAIL + 1))
        FAILED+=("round $r: token init failed")
        echo "  FAIL  token init (log: $WORK/round$r/init.log)"
        sed 's/^/        /' "$WORK/round$r/init.log"
        continue
    fi
    step "$r" "r$r --test (empty token)" "No errors" --login --pin "$PIN" --test
    step "$r" "r$r --test-ec" "==> OK" --session-rw --login --pin "$PIN" \
        --test-ec --id 01 --key-type EC:prime256v1
    if p11 --login --pin "$PIN" --keypairgen --key-type rsa:2048 --id 02 --label rsa \
        >"$WORK/round$r/rsagen.log" 2>&1; then
        step "$r" "r$r --test (RSA-2048 key)" "No errors" --login --pin "$PIN" --test
    else
        FAIL=$((FAIL + 1))
        FAILED+=("r$r RSA-2048 keypairgen failed")
        echo "  FAIL  RSA-2048 keypairgen (log: $WORK/round$r/rsagen.log)"
    fi
    step "$r" "r$r --test-fork" "" --test-fork -L
    step "$r" "r$r --test-fork --login --test" "No errors" --test-fork --login --pin "$PIN" --test
    mapfile -t a < <(thread_args ILGISLT0 ILGISLT0GISL ILSLT0 ILGIGIGI)
    step "$r" "r$r --use-locking threads IL x4" "test_threads cleanup finished" \
        --use-locking "${a[@]}" --login --pin "$PIN" --test
    mapfile -t a < <(thread_args INGISLT0 INGISLT0 INGISLT0)
    step "$r" "r$r threads IN x3" "test_threads cleanup finished" \
        "${a[@]}" --login --pin "$PIN" --test
    mapfile -t a < <(thread_args INGISL ILGISLT0 IN:GI:SL:T0 ILSLT0SLT0 INGIGI ILGI INSLT0 ILSL)
    step "$r" "r$r threads IN/IL x8" "test_threads cleanup finished" \
        "${a[@]}" --login --pin "$PIN" --test
    mapfile -t a < <(thread_args ILGISLT0 INGISLT0)
    step "$r" "r$r --use-locking threads IN/IL x2" "test_threads cleanup finished" \
        --use-locking "${a[@]}" --login --pin "$PIN" --test
done

echo
echo "==> summary: $MODULE"
echo "    $PASS passed, $FAIL failed, $RUNS round(s), $((SECONDS - T0)) s"
for f in "${FAILED[@]}"; do
    echo "    FAIL $f"
done
[[ $FAIL -eq 0 ]]

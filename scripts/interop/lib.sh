# shellcheck shell=bash
# scripts/interop/lib.sh — the step machinery every interop row shares. Sourced after
# scripts/common.sh; the row sets ROW. Each step runs in a subshell with errexit and no
# stdin, so a failing command or check ends that step only; the row goes on and
# `interop_finish` reports and sets the exit status.

STEP=0
PASSED=0
FAILED_STEPS=()

# step NAME COMMAND...: run one step and record its outcome.
step() {
    local name=$1 rc
    shift
    STEP=$((STEP + 1))
    echo "==> [$STEP] $name"
    set +e
    (
        set -e
        "$@"
    ) </dev/null
    rc=$?
    set -e
    if [[ $rc -eq 0 ]]; then
        PASSED=$((PASSED + 1))
    else
        FAILED_STEPS+=("[$STEP] $name")
        echo "    FAILED: step [$STEP] $name (exit $rc)" >&2
    fi
}

# fail MESSAGE: a check inside a step failed.
fail() {
    echo "    check failed: $*" >&2
    return 1
}

# interop_finish: the closing line, the failed steps, and the row's exit status.
interop_finish() {
    local s
    echo "interop $ROW: $PASSED passed, ${#FAILED_STEPS[@]} failed"
    for s in "${FAILED_STEPS[@]}"; do
        echo "interop $ROW: FAILED step $s" >&2
    done
    [[ ${#FAILED_STEPS[@]} -eq 0 ]]
}

#!/usr/bin/env bash
# scripts/test.sh — the whole test suite: release build, exported-symbol check,
# cargo test (unit + integration), the conformance stages (the differential suite
# against SoftHSM, 60 s of random call sequences, the third-party suites), the
# benchmark's quick mode, then scripts/demo.sh against the built module and, as a
# reference that the tools themselves work, against SoftHSM.
#
# Environment:
#   P11KMS_MODULE  module the integration tests, the symbol check and the demo use
#                  (default: the freshly built target/release/libp11kms.so).
#
# One build profile only (release): the tests reuse the build's artefacts.
set -Euo pipefail

# shellcheck source=scripts/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
cd "$P11KMS_ROOT" || exit 1

SOFTHSM=/usr/lib/softhsm/libsofthsm2.so

p11kms_ensure pkcs11-tool=opensc softhsm=softhsm2 engine=libengine-pkcs11-openssl \
    p11kitproxy=p11-kit-modules sqlite3=sqlite3 \
    ssh-keygen=openssh-client openssl=openssl nm=binutils cc=build-essential
if ! command -v cargo >/dev/null 2>&1; then
    echo "error: cargo not found: install a Rust toolchain (https://rustup.rs)" >&2
    exit 1
fi

PASSED=()
FAILED=()
# Each stage's output is also kept here, so that the summary at the end (all that a CI
# record may keep) can repeat why a stage failed.
STAGE_LOGS="$(mktemp -d "${TMPDIR:-/tmp}/p11kms-test-logs.XXXXXX")"
FAILED_LOGS=()

# stage NAME COMMAND...: run one stage, record its result, never stop the script.
stage() {
    local name=$1 start rc log
    shift
    echo
    echo "=== $name"
    start=$SECONDS
    log="$STAGE_LOGS/$(( ${#PASSED[@]} + ${#FAILED[@]} )).log"
    # Through a process substitution, not a pipe: the stage runs in this shell and an
    # emulator it starts in the background cannot hold the stage open.
    local fd tee_pid n=0
    exec {fd}> >(tee "$log")
    tee_pid=$!
    "$@" >&"$fd" 2>&1
    rc=$?
    exec {fd}>&-
    # tee ends when the stage's last writer does; a stray background writer gets 5 s.
    while kill -0 "$tee_pid" 2>/dev/null && ((n++ < 50)); do sleep 0.1; done
    if [[ $rc -eq 0 ]]; then
        PASSED+=("$name")
        echo "=== $name: ok ($((SECONDS - start))s)"
    else
        FAILED+=("$name")
        FAILED_LOGS+=("$log")
        echo "=== $name: FAILED, exit $rc ($((SECONDS - start))s)"
    fi
    return "$rc"
}

summary() {
    local name i
    for i in "${!FAILED[@]}"; do
        echo
        echo "=== why '${FAILED[$i]}' failed (its failure lines and last lines; full output above)"
        grep -E 'FAIL|[Ff]ailed|panicked|error[:[]|Error:|Aborting' "${FAILED_LOGS[$i]}" | tail -n 40 | cut -c1-300 | sed 's/^/  | /'
        echo "  | ..."
        tail -n 15 "${FAILED_LOGS[$i]}" | cut -c1-300 | sed 's/^/  | /'
    done
    echo
    echo "=== summary"
    for name in "${PASSED[@]}"; do
        echo "  ok      $name"
    done
    for name in "${FAILED[@]}"; do
        echo "  FAILED  $name"
    done
    echo "test.sh: ${#PASSED[@]} passed, ${#FAILED[@]} failed"
}

# Only the PKCS#11 entry points may be exported (DESIGN: symbol hygiene).
check_symbols() {
    local module=$1 syms bad want
    syms="$(nm -D --defined-only "$module")" || return 1
    # Version-node names (type A) are not symbols anyone binds to.
    bad="$(awk 'NF >= 3 && $2 != "A" && $3 !~ /^C_/ {print "    " $3}' <<<"$syms")"
    if [[ -n "$bad" ]]; then
        echo "exported symbols other than C_*:"
        echo "$bad"
        return 1
    fi
    for want in C_GetFunctionList C_GetInterface C_GetInterfaceList; do
        # A version script makes names like C_GetInterface@@P11KMS_1.0.
        if ! awk '{sub(/@.*/, "", $3); print $3}' <<<"$syms" | grep -qx "$want"; then
            echo "missing export: $want"
            return 1
        fi
    done
    echo "$(awk '$3 ~ /^C_/' <<<"$syms" | wc -l) C_* symbols exported, nothing else"
}

if ! stage "cargo build --release" cargo build --release; then
    summary
    exit 1
fi

export P11KMS_MODULE="${P11KMS_MODULE:-$(p11kms_default_module)}"
echo "test.sh: module under test: $P11KMS_MODULE"

# The AWS KMS emulator for tests/aws.rs: LocalStack on 127.0.0.1, stopped on exit.
# Its environment (AWS_ENDPOINT_URL, test credentials, region) is what tells
# tests/aws.rs to run rather than print "skipped: no emulator".
localstack_up() {
    scripts/localstack.sh install && scripts/localstack.sh start || return 1
    eval "$(scripts/localstack.sh env)"
}
trap 'rm -rf "$STAGE_LOGS"; scripts/localstack.sh stop >/dev/null 2>&1 || true; scripts/gcpkms.sh stop >/dev/null 2>&1 || true' EXIT
if stage "LocalStack KMS emulator (scripts/localstack.sh)" localstack_up; then
    eval "$(scripts/localstack.sh env)"
    export AWS_ENDPOINT_URL AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_DEFAULT_REGION
else
    echo "test.sh: LocalStack did not start: tests/aws.rs will print 'skipped: no emulator'"
fi
# The Cloud KMS emulator for the gcp demo and interop stages (tests/gcp.rs starts its
# own on a free port).
# It needs a Python with `cryptography`: the LocalStack virtualenv has one.
gcpkms_up() {
    scripts/gcpkms.sh start || return 1
    eval "$(scripts/gcpkms.sh env)"
}
if stage "Cloud KMS emulator (scripts/gcpkms.sh)" gcpkms_up; then
    eval "$(scripts/gcpkms.sh env)"
    export P11KMS_GCPKMS_ENDPOINT
fi

stage "exported symbols (nm -D)" check_symbols "$P11KMS_MODULE"
# With the emulator's environment set, tests/aws.rs runs against LocalStack.
stage "cargo test --release" cargo test --release
# Conformance (README "Conformance"): the differential corpus against SoftHSM (also part of
# cargo test; here with its per-step log and table), and the random call sequences for
# 60 s instead of cargo test's 5 s.
stage "differential suite against SoftHSM (tests/differential.rs)" \
    env P11KMS_REQUIRE_SOFTHSM=1 cargo test --release --test differential -- --nocapture
stage "random call sequences, 60 s (tests/fuzz.rs)" \
    env P11KMS_FUZZ_SECS=60 cargo test --release --test fuzz -- --nocapture
# Numbers for people, asserted about nothing (issue 6): `cargo test` built the harness.
stage "benchmark (quick mode)" scripts/bench.sh --quick
stage "the cryptoki crate's own test suite (skip list: scripts/cryptoki-suite.skip)" scripts/cryptoki-suite.sh
stage "demo.sh against the module" env P11KMS_DEMO_STRICT=1 scripts/demo.sh
stage "demo.sh on an AWS KMS token (LocalStack)" env P11KMS_DEMO_STRICT=1 P11KMS_DEMO_BACKEND=aws scripts/demo.sh
stage "demo.sh on a Google Cloud KMS token (emulator)" env P11KMS_DEMO_STRICT=1 P11KMS_DEMO_BACKEND=gcp scripts/demo.sh
stage "pkcs11-tool --test, --test-ec, --test-fork, --test-threads" scripts/pkcs11-tool-tests.sh
# On local and, with LocalStack and the Cloud KMS emulator up (above, both stopped only
# on exit), aws and gcp tokens: run-all checks each answers.
stage "interop rows on local, aws and gcp tokens (scripts/interop/run-all.sh)" scripts/interop/run-all.sh
stage "demo.sh against SoftHSM (tool reference)" env P11KMS_MODULE="$SOFTHSM" scripts/demo.sh

# The same third-party suites against SoftHSM, for the README's side-by-side numbers.
# SoftHSM is expected to fail several pkcs11-tool steps (see scripts/pkcs11-tool-tests.sh),
# so this stage reports their summaries and fails only if a suite cannot run at all.
softhsm_reference() {
    local out rc=0
    out="$(P11KMS_MODULE="$SOFTHSM" scripts/cryptoki-suite.sh 2>&1)"
    grep -A1 '^==> summary' <<<"$out" || rc=1
    out="$(P11KMS_MODULE="$SOFTHSM" scripts/pkcs11-tool-tests.sh 2>&1)"
    grep -A1 '^==> summary' <<<"$out" || rc=1
    return "$rc"
}
stage "the same suites against SoftHSM (reference numbers)" softhsm_reference

summary
[[ ${#FAILED[@]} -eq 0 ]]

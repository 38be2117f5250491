#!/usr/bin/env bash
# scripts/bench.sh — the benchmark harness (examples/bench): p11kms, SoftHSM and
# aws-lc-rs directly, the same workloads in one run, interleaved rounds, medians and
# ratios; a JSON result, a Markdown table and an SVG chart with --out DIR.
#
# Usage: scripts/bench.sh [--quick] [--out DIR] [--module PATH] [--softhsm PATH|none]
#   --quick    a few seconds (what scripts/test.sh runs); the numbers are for people,
#              nothing is asserted about time
#   --out DIR  write DIR/bench.json, DIR/table.md and DIR/bench.svg
#
# With an AWS KMS emulator's environment (eval "$(scripts/localstack.sh env)") it
# also compares a remote sign through the module with the direct aws-sdk-kms call.
# The full run (no --quick) takes a few minutes; the machine's load is printed with
# the results: run it on a quiet machine.
set -Euo pipefail

# shellcheck source=scripts/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
cd "$P11KMS_ROOT" || exit 1

# One profile: the release build the tests use (the example reuses its dependencies).
cargo build --release --lib --example bench || exit 1
exec "${CARGO_TARGET_DIR:-$P11KMS_ROOT/target}/release/examples/bench" "$@"

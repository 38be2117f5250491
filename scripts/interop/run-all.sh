#!/usr/bin/env bash
# scripts/interop/run-all.sh — every interop row (scripts/interop/*.sh but this one and lib.sh),
# each against the module in P11KMS_MODULE (default: target/release/libp11kms.so) on a
# throwaway local token. Runs them all, then prints one line per row and a summary.
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
export P11KMS_MODULE="${P11KMS_MODULE:-$root/target/release/libp11kms.so}"

passed=()
failed=()
for row in "$here"/*.sh; do
    name="$(basename "$row" .sh)"
    [[ "$name" == run-all || "$name" == lib ]] && continue
    echo
    echo "=== interop row: $name"
    start=$SECONDS
    if timeout 600 bash "$row" </dev/null; then
        passed+=("$name")
        echo "=== $name: ok ($((SECONDS - start))s)"
    else
        failed+=("$name")
        echo "=== $name: FAILED ($((SECONDS - start))s)"
    fi
done
echo
for n in "${passed[@]}"; do echo "  ok      $n"; done
for n in "${failed[@]}"; do echo "  FAILED  $n"; done
echo "interop: ${#passed[@]} passed, ${#failed[@]} failed"
[[ ${#failed[@]} -eq 0 ]]

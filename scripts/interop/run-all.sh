#!/usr/bin/env bash
# scripts/interop/run-all.sh — every interop row (scripts/interop/*.sh but this one and
# lib.sh) against the module in P11KMS_MODULE (default: target/release/libp11kms.so),
# once per backend: each row gets a throwaway token of that backend (lib.sh's
# interop_conf). Runs them all, then prints a tool x backend table and a summary.
#
# Environment:
#   P11KMS_INTEROP_BACKENDS  space-separated backends (default: local, plus aws when
#                            the emulator in AWS_ENDPOINT_URL answers, plus gcp when
#                            the Cloud KMS emulator in P11KMS_GCPKMS_ENDPOINT does;
#                            test.sh starts both and exports their env before this
#                            stage)
#   P11KMS_INTEROP_ROWS      space-separated row names to run (default: all)
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
export P11KMS_MODULE="${P11KMS_MODULE:-$root/target/release/libp11kms.so}"

# Does the KMS emulator in AWS_ENDPOINT_URL answer? (LocalStack's health route.)
aws_up() {
    [[ -n "${AWS_ENDPOINT_URL:-}" ]] &&
        curl -fsS --max-time 3 "$AWS_ENDPOINT_URL/_localstack/health" 2>/dev/null |
        grep -Eq '"kms": *"(available|running)"'
}

# Does the Cloud KMS emulator in P11KMS_GCPKMS_ENDPOINT answer? (Its admin API, which
# scripts/gcpkms.sh's health check uses too.)
gcp_up() {
    [[ -n "${P11KMS_GCPKMS_ENDPOINT:-}" ]] &&
        curl -fsS --max-time 3 "$P11KMS_GCPKMS_ENDPOINT/_emulator/calls" >/dev/null 2>&1
}

if [[ -n "${P11KMS_INTEROP_BACKENDS:-}" ]]; then
    read -ra backends <<<"$P11KMS_INTEROP_BACKENDS"
else
    backends=(local)
    if aws_up; then
        backends+=(aws)
    else
        echo "interop: no KMS emulator at AWS_ENDPOINT_URL='${AWS_ENDPOINT_URL:-}': aws column not run"
    fi
    if gcp_up; then
        backends+=(gcp)
    else
        echo "interop: no Cloud KMS emulator at P11KMS_GCPKMS_ENDPOINT='${P11KMS_GCPKMS_ENDPOINT:-}': gcp column not run"
    fi
fi

rows=()
for row in "$here"/*.sh; do
    name="$(basename "$row" .sh)"
    [[ "$name" == run-all || "$name" == lib ]] && continue
    if [[ -n "${P11KMS_INTEROP_ROWS:-}" && " $P11KMS_INTEROP_ROWS " != *" $name "* ]]; then
        continue
    fi
    rows+=("$name")
done

declare -A cell
declare -A total
failed=0
for backend in "${backends[@]}"; do
    start_b=$SECONDS
    for name in "${rows[@]}"; do
        echo
        echo "=== interop row: $name on $backend"
        start=$SECONDS
        out="$(mktemp)"
        P11KMS_INTEROP_BACKEND="$backend" timeout 900 bash "$here/$name.sh" </dev/null 2>&1 | tee "$out"
        rc=${PIPESTATUS[0]}
        # The row's last line: "interop ROW: N passed, M failed, K skipped on BACKEND".
        counts="$(sed -n 's/^interop .*: \([0-9]*\) passed, \([0-9]*\) failed, \([0-9]*\) skipped on .*/\1 \2 \3/p' "$out" | tail -n 1)"
        rm -f "$out"
        read -r p f s <<<"${counts:-0 0 0}"
        if [[ $rc -eq 0 ]]; then
            skips=""
            [[ $s -gt 0 ]] && skips=", $s skipped"
            cell[$name,$backend]="pass ($p steps$skips) $((SECONDS - start))s"
            echo "=== $name on $backend: ok ($((SECONDS - start))s)"
        else
            failed=$((failed + 1))
            cell[$name,$backend]="FAILED ($f of $((p + f)) steps, exit $rc) $((SECONDS - start))s"
            echo "=== $name on $backend: FAILED ($((SECONDS - start))s)"
        fi
    done
    total[$backend]=$((SECONDS - start_b))
done

echo
printf '%-14s' "row"
for backend in "${backends[@]}"; do printf ' | %-34s' "$backend"; done
echo
for name in "${rows[@]}"; do
    printf '%-14s' "$name"
    for backend in "${backends[@]}"; do printf ' | %-34s' "${cell[$name,$backend]}"; done
    echo
done
printf '%-14s' "time"
for backend in "${backends[@]}"; do printf ' | %-34s' "${total[$backend]}s"; done
echo
echo "interop: $((${#rows[@]} * ${#backends[@]} - failed)) passed, $failed failed (${#rows[@]} rows x ${#backends[@]} backends: ${backends[*]})"
[[ $failed -eq 0 ]]

#!/usr/bin/env bash
# scripts/gcpkms.sh — the Cloud KMS v1 REST emulator of the tests (tests/gcpkms/emulator.py),
# bound to 127.0.0.1 only.
#
# Usage: scripts/gcpkms.sh start|stop|status|env|selftest
#   start     start the emulator in the background and wait until its port answers
#   stop      stop it (the whole process group) and remove the pid file
#   status    say whether it runs and answers (exit 0 only then)
#   env       print export lines for `eval "$(scripts/gcpkms.sh env)"`
#   selftest  run tests/gcpkms/test_emulator.py (it starts its own emulator on a free port)
#
# Environment:
#   P11KMS_GCPKMS_PORT      port on 127.0.0.1 (default: 9090)
#   P11KMS_GCPKMS_DIR       state dir: log, pid file and the keys (state.json)
#                           (default: /tmp/p11kms-gcpkms)
#   P11KMS_GCPKMS_DELAY_MS  PENDING_GENERATION -> ENABLED delay of new asymmetric
#                           versions (default: 200)
#   P11KMS_GCPKMS_PYTHON    the Python to use (default: python3 when it has
#                           `cryptography`, else the LocalStack virtualenv's)
set -Euo pipefail

SCRIPTS="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=scripts/common.sh
source "$SCRIPTS/common.sh"
ROOT="$P11KMS_ROOT"

STATE="${P11KMS_GCPKMS_DIR:-/tmp/p11kms-gcpkms}"
PORT="${P11KMS_GCPKMS_PORT:-9090}"
DELAY_MS="${P11KMS_GCPKMS_DELAY_MS:-200}"
p11kms_server_files "$STATE" gcpkms
EMULATOR="$ROOT/tests/gcpkms/emulator.py"
LOCALSTACK_PY="$HOME/.cache/p11kms/localstack-venv/bin/python"
START_TIMEOUT=30

# A Python that can import cryptography (the emulator's one dependency).
python_bin() {
    local p
    for p in "${P11KMS_GCPKMS_PYTHON:-}" python3 "$LOCALSTACK_PY"; do
        [[ -n "$p" ]] || continue
        if command -v "$p" >/dev/null 2>&1 && "$p" -c 'import cryptography' 2>/dev/null; then
            command -v "$p"
            return 0
        fi
    done
    echo "error: no Python with the 'cryptography' package (tried python3 and $LOCALSTACK_PY)" >&2
    echo "install it, e.g. 'apt-get install python3-cryptography', 'python3 -m pip install cryptography'" >&2
    echo "or 'scripts/localstack.sh install' (its virtualenv has it)" >&2
    exit 1
}

# Does the emulator answer (its admin API, which no other server has)?
healthy() {
    curl -fsS --max-time 2 "$ENDPOINT/_emulator/calls" >/dev/null 2>&1
}

cmd_start() {
    local pid py start
    pid="$(p11kms_running_pid)"
    if [[ -n "$pid" ]]; then
        healthy || p11kms_die "the emulator (pid $pid) runs but $ENDPOINT does not answer; see $LOGFILE or run '$0 stop'"
        echo "==> Cloud KMS emulator already running (pid $pid) at $ENDPOINT"
        return 0
    fi
    p11kms_server_preflight P11KMS_GCPKMS_PORT
    py="$(python_bin)"
    start="$(p11kms_now)"
    echo "==> starting the Cloud KMS emulator on $ENDPOINT with $py (state $STATE/state.json, log $LOGFILE)"
    p11kms_server_spawn "$STATE" . \
        "$py" "$EMULATOR" --port "$PORT" --generation-delay-ms "$DELAY_MS" \
        --state "$STATE/state.json"

    p11kms_server_wait "$START_TIMEOUT" 0.1
    case $? in
        0)
            echo "==> answering after $(p11kms_elapsed "$start") s (pid $P11KMS_SERVER_PID)"
            return 0
            ;;
        3) p11kms_server_failed 20 "the emulator exited before answering" ;;
        *)
            p11kms_server_failed 20 "the emulator did not answer within ${START_TIMEOUT} s"
            cmd_stop >&2 || true
            ;;
    esac
    exit 1
}

cmd_stop() {
    p11kms_server_stop "the Cloud KMS emulator" 0.1 5
}

cmd_status() {
    p11kms_server_state "Cloud KMS emulator"
    case $? in
        0) echo "Cloud KMS emulator: running (pid $P11KMS_SERVER_PID) at $ENDPOINT; log: $LOGFILE" ;;
        2)
            echo "Cloud KMS emulator: running (pid $P11KMS_SERVER_PID) but $ENDPOINT does not answer; log: $LOGFILE"
            return 1
            ;;
        *) return 1 ;;
    esac
}

cmd_env() {
    p11kms_exports P11KMS_GCPKMS_ENDPOINT="$ENDPOINT"
}

cmd_selftest() {
    local py
    py="$(python_bin)"
    "$py" "$ROOT/tests/gcpkms/test_emulator.py" "$@"
}

case "${1:-}" in
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    env) cmd_env ;;
    selftest) cmd_selftest "${@:2}" ;;
    *)
        echo "usage: $0 start|stop|status|env|selftest" >&2
        exit 2
        ;;
esac

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
ROOT="$(cd "$SCRIPTS/.." && pwd)"

STATE="${P11KMS_GCPKMS_DIR:-/tmp/p11kms-gcpkms}"
PORT="${P11KMS_GCPKMS_PORT:-9090}"
DELAY_MS="${P11KMS_GCPKMS_DELAY_MS:-200}"
PIDFILE="$STATE/gcpkms.pid"
LOGFILE="$STATE/gcpkms.log"
ENDPOINT="http://127.0.0.1:$PORT"
EMULATOR="$ROOT/tests/gcpkms/emulator.py"
LOCALSTACK_PY="$HOME/.cache/p11kms/localstack-venv/bin/python"
START_TIMEOUT=30

die() {
    echo "error: $*" >&2
    exit 1
}

now() {
    date +%s.%3N
}

elapsed() {
    awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'
}

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

# The pid in the pid file when that process is alive, or nothing.
running_pid() {
    local pid
    [[ -r "$PIDFILE" ]] || return 0
    pid="$(<"$PIDFILE")"
    if [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null; then
        printf '%s\n' "$pid"
    fi
}

# Does the emulator answer (its admin API, which no other server has)?
healthy() {
    curl -fsS --max-time 2 "$ENDPOINT/_emulator/calls" >/dev/null 2>&1
}

port_in_use() {
    (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null
}

cmd_start() {
    local pid py start written
    pid="$(running_pid)"
    if [[ -n "$pid" ]]; then
        healthy || die "the emulator (pid $pid) runs but $ENDPOINT does not answer; see $LOGFILE or run '$0 stop'"
        echo "==> Cloud KMS emulator already running (pid $pid) at $ENDPOINT"
        return 0
    fi
    if port_in_use; then
        die "127.0.0.1:$PORT is already in use by a process not started by this script (set P11KMS_GCPKMS_PORT)"
    fi
    command -v curl >/dev/null 2>&1 || die "curl not found (apt-get install curl)"
    command -v setsid >/dev/null 2>&1 || die "setsid not found (apt-get install util-linux)"
    py="$(python_bin)"

    mkdir -p "$STATE"
    rm -f "$PIDFILE"
    if [[ -e "$LOGFILE" ]]; then
        mv -f "$LOGFILE" "$LOGFILE.1"
    fi
    start="$(now)"
    echo "==> starting the Cloud KMS emulator on $ENDPOINT with $py (state $STATE/state.json, log $LOGFILE)"
    # Its own session and process group, so that stop can end the whole group.
    # shellcheck disable=SC2016 # $$ and $@ are the inner sh's
    setsid sh -c 'echo $$ >"$1"; shift; exec "$@"' sh "$PIDFILE" \
        "$py" "$EMULATOR" --port "$PORT" --generation-delay-ms "$DELAY_MS" \
        --state "$STATE/state.json" </dev/null >"$LOGFILE" 2>&1 &

    local deadline=$((SECONDS + START_TIMEOUT))
    while ((SECONDS < deadline)); do
        pid="$(running_pid)"
        if [[ -n "$pid" ]] && healthy; then
            echo "==> answering after $(elapsed "$start") s (pid $pid)"
            return 0
        fi
        written="$(cat "$PIDFILE" 2>/dev/null)" || written=
        if [[ "$written" =~ ^[0-9]+$ ]] && ! kill -0 "$written" 2>/dev/null; then
            echo "error: the emulator exited before answering; last lines of $LOGFILE:" >&2
            tail -n 20 "$LOGFILE" >&2
            rm -f "$PIDFILE"
            exit 1
        fi
        sleep 0.1
    done
    echo "error: the emulator did not answer within ${START_TIMEOUT} s; last lines of $LOGFILE:" >&2
    tail -n 20 "$LOGFILE" >&2
    cmd_stop >&2 || true
    exit 1
}

cmd_stop() {
    local pid i
    pid="$(running_pid)"
    if [[ -z "$pid" ]]; then
        rm -f "$PIDFILE"
        echo "==> the Cloud KMS emulator is not running"
        return 0
    fi
    echo "==> stopping the Cloud KMS emulator (process group $pid)"
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    for ((i = 1; i <= 50; i++)); do
        kill -0 -- "-$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 -- "-$pid" 2>/dev/null; then
        echo "==> still running after 5 s: SIGKILL"
        kill -KILL -- "-$pid" 2>/dev/null || true
    fi
    rm -f "$PIDFILE"
    echo "==> stopped"
}

cmd_status() {
    local pid
    pid="$(running_pid)"
    if [[ -z "$pid" ]]; then
        echo "Cloud KMS emulator: not running"
        return 1
    fi
    if healthy; then
        echo "Cloud KMS emulator: running (pid $pid) at $ENDPOINT; log: $LOGFILE"
        return 0
    fi
    echo "Cloud KMS emulator: running (pid $pid) but $ENDPOINT does not answer; log: $LOGFILE"
    return 1
}

cmd_env() {
    echo "export P11KMS_GCPKMS_ENDPOINT=$ENDPOINT"
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

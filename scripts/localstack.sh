#!/usr/bin/env bash
# scripts/localstack.sh — LocalStack's KMS as the AWS KMS emulator for the tests,
# run from a virtualenv (no Docker), bound to 127.0.0.1 only.
#
# Usage: scripts/localstack.sh install|start|stop|status|env|selfcheck
#   install    create the virtualenv and pip-install the pinned requirements
#              (skipped when localstack-core is already at the pinned version)
#   start      start KMS in the background and wait until it is healthy
#   stop       stop it (the whole process group) and remove the pid file
#   status     say whether it runs and is healthy (exit 0 only when healthy)
#   env        print export lines for `eval "$(scripts/localstack.sh env)"`
#   selfcheck  run scripts/localstack-selfcheck.py against the running emulator
#
# Environment:
#   P11KMS_LOCALSTACK_VENV  virtualenv (default: ~/.cache/p11kms/localstack-venv)
#   P11KMS_LOCALSTACK_DIR   state dir: FILESYSTEM_ROOT, log and pid file
#                           (default: /tmp/p11kms-localstack)
#   P11KMS_LOCALSTACK_PORT  gateway port on 127.0.0.1 (default: 4566)
#
# Requirements: ../shared/localstack-requirements.txt beside the repository when
# present, else the copy committed as scripts/localstack-requirements.txt.
set -Euo pipefail

SCRIPTS="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$SCRIPTS/.." && pwd)"

VENV="${P11KMS_LOCALSTACK_VENV:-$HOME/.cache/p11kms/localstack-venv}"
STATE="${P11KMS_LOCALSTACK_DIR:-/tmp/p11kms-localstack}"
PORT="${P11KMS_LOCALSTACK_PORT:-4566}"
PIDFILE="$STATE/localstack.pid"
LOGFILE="$STATE/localstack.log"
ENDPOINT="http://127.0.0.1:$PORT"
HEALTH_TIMEOUT=120

die() {
    echo "error: $*" >&2
    exit 1
}

# Seconds since the epoch with milliseconds, for timings.
now() {
    date +%s.%3N
}

elapsed() {
    awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'
}

requirements_file() {
    local shared="$ROOT/../shared/localstack-requirements.txt"
    if [[ -r "$shared" ]]; then
        printf '%s\n' "$shared"
    else
        printf '%s\n' "$SCRIPTS/localstack-requirements.txt"
    fi
}

base_python() {
    local p=/root/.pyenv/versions/3.13.0/bin/python3
    if [[ -x "$p" ]]; then
        printf '%s\n' "$p"
    elif command -v python3.13 >/dev/null 2>&1; then
        command -v python3.13
    else
        echo "error: Python 3.13 not found (looked for $p and python3.13 on PATH)" >&2
        echo "install it first, e.g. 'pyenv install 3.13.0' or 'apt-get install python3.13 python3.13-venv'" >&2
        exit 1
    fi
}

# The localstack-core version installed in the venv, or nothing.
installed_version() {
    [[ -x "$VENV/bin/python" ]] || return 0
    "$VENV/bin/python" - <<'EOF' 2>/dev/null || true
import importlib.metadata as m
try:
    print(m.version("localstack-core"))
except m.PackageNotFoundError:
    pass
EOF
}

cmd_install() {
    local start reqs pinned have py
    start="$(now)"
    reqs="$(requirements_file)"
    [[ -r "$reqs" ]] || die "requirements file not found: $reqs"
    pinned="$(sed -n 's/^localstack-core==\([^[:space:];#]*\).*/\1/p' "$reqs")"
    [[ -n "$pinned" ]] || die "no localstack-core==VERSION pin in $reqs"
    echo "==> requirements: $reqs (localstack-core $pinned)"

    if [[ ! -x "$VENV/bin/python" ]]; then
        py="$(base_python)"
        echo "==> creating virtualenv $VENV with $py ($("$py" --version 2>&1))"
        mkdir -p "$(dirname "$VENV")"
        "$py" -m venv "$VENV" || die "could not create the virtualenv $VENV"
    fi

    have="$(installed_version)"
    if [[ "$have" == "$pinned" ]]; then
        echo "==> localstack-core $have already installed in $VENV: pip skipped"
    else
        echo "==> pip install -r $reqs${have:+ (localstack-core was $have)}"
        "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$reqs" </dev/null ||
            die "pip install failed"
        have="$(installed_version)"
        [[ "$have" == "$pinned" ]] || die "localstack-core is '${have:-missing}' after pip, expected $pinned"
    fi
    echo "==> install done in $(elapsed "$start") s"
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

# Is KMS "available" or "running" in LocalStack's health report?
healthy() {
    local body
    body="$(curl -fsS --max-time 2 "$ENDPOINT/_localstack/health" 2>/dev/null)" || return 1
    grep -Eq '"kms": *"(available|running)"' <<<"$body"
}

port_in_use() {
    (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null
}

rss_kib() {
    # The resident set of its session (the server plus any children).
    ps -o rss= -s "$1" 2>/dev/null | awk '{ s += $1 } END { print s + 0 }'
}

cmd_start() {
    local pid start written
    pid="$(running_pid)"
    if [[ -n "$pid" ]]; then
        if healthy; then
            echo "==> LocalStack KMS already running (pid $pid) and healthy at $ENDPOINT"
            return 0
        fi
        die "LocalStack (pid $pid) runs but $ENDPOINT/_localstack/health does not report kms; see $LOGFILE or run '$0 stop'"
    fi
    # LocalStack does not exit when its port is taken (it logs "Ready." and never
    # answers), so refuse to start rather than time out.
    if port_in_use; then
        die "127.0.0.1:$PORT is already in use by a process not started by this script (set P11KMS_LOCALSTACK_PORT)"
    fi
    [[ -x "$VENV/bin/python" ]] || die "no virtualenv at $VENV: run '$0 install' first"
    command -v curl >/dev/null 2>&1 || die "curl not found (apt-get install curl)"
    command -v setsid >/dev/null 2>&1 || die "setsid not found (apt-get install util-linux)"

    mkdir -p "$STATE"
    rm -f "$PIDFILE"
    # One log per run, so that the tail shown on failure is this run's; keep the last.
    if [[ -e "$LOGFILE" ]]; then
        mv -f "$LOGFILE" "$LOGFILE.1"
    fi
    start="$(now)"
    echo "==> starting LocalStack KMS on $ENDPOINT (state $STATE, log $LOGFILE)"
    # Its own session and process group, so that stop can end the whole group; the
    # inner sh writes its own pid (that of the server once exec'd) to the pid file.
    # shellcheck disable=SC2016 # $$ and $@ are the inner sh's
    (
        cd "$STATE" || exit 1
        exec env \
            GATEWAY_LISTEN="127.0.0.1:$PORT" \
            SERVICES=kms \
            EAGER_SERVICE_LOADING=1 \
            FILESYSTEM_ROOT="$STATE" \
            SKIP_SSL_CERT_DOWNLOAD=1 \
            DISABLE_EVENTS=1 \
            LOCALSTACK_CLI=0 \
            DNS_ADDRESS=0 \
            GATEWAY_SERVER=hypercorn \
            setsid sh -c 'echo $$ >"$1"; shift; exec "$@"' sh "$PIDFILE" \
            "$VENV/bin/python" -m localstack.runtime.main
    ) </dev/null >"$LOGFILE" 2>&1 &

    local started=$SECONDS deadline=$((SECONDS + HEALTH_TIMEOUT))
    while ((SECONDS < deadline)); do
        pid="$(running_pid)"
        if [[ -n "$pid" ]] && healthy; then
            echo "==> healthy after $(elapsed "$start") s (pid $pid, RSS $(rss_kib "$pid") KiB)"
            return 0
        fi
        if [[ ! -e "$PIDFILE" ]] && ((SECONDS - started > 10)); then
            echo "error: LocalStack did not even start (no pid file after 10 s); last lines of $LOGFILE:" >&2
            tail -n 40 "$LOGFILE" >&2
            exit 1
        fi
        # The inner sh truncates the pid file before writing it: only a pid that was
        # written and is gone means the server exited.
        written="$(cat "$PIDFILE" 2>/dev/null)" || written=
        if [[ "$written" =~ ^[0-9]+$ ]] && ! kill -0 "$written" 2>/dev/null; then
            echo "error: LocalStack exited before becoming healthy; last lines of $LOGFILE:" >&2
            tail -n 40 "$LOGFILE" >&2
            rm -f "$PIDFILE"
            exit 1
        fi
        sleep 0.2
    done
    echo "error: LocalStack KMS not healthy after ${HEALTH_TIMEOUT} s; last lines of $LOGFILE:" >&2
    tail -n 40 "$LOGFILE" >&2
    cmd_stop >&2 || true
    exit 1
}

cmd_stop() {
    local pid i
    pid="$(running_pid)"
    if [[ -z "$pid" ]]; then
        rm -f "$PIDFILE"
        echo "==> LocalStack is not running"
        return 0
    fi
    echo "==> stopping LocalStack (process group $pid)"
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    for ((i = 1; i <= 50; i++)); do
        kill -0 -- "-$pid" 2>/dev/null || break
        # LocalStack's hypercorn shutdown stops its asyncio loop from another thread
        # without waking it, so now and then the loop sleeps in select() for good
        # after SIGTERM; any connection wakes it and it exits.
        if ((i % 5 == 0)); then
            curl -s -o /dev/null --max-time 1 "$ENDPOINT/_localstack/health" 2>/dev/null || true
        fi
        sleep 0.2
    done
    if kill -0 -- "-$pid" 2>/dev/null; then
        echo "==> still running after 10 s: SIGKILL"
        kill -KILL -- "-$pid" 2>/dev/null || true
        sleep 0.5
    fi
    rm -f "$PIDFILE"
    echo "==> stopped"
}

cmd_status() {
    local pid
    pid="$(running_pid)"
    if [[ -z "$pid" ]]; then
        echo "LocalStack: not running"
        return 1
    fi
    if healthy; then
        echo "LocalStack: running (pid $pid, RSS $(rss_kib "$pid") KiB), kms healthy at $ENDPOINT"
        echo "log: $LOGFILE"
        return 0
    fi
    echo "LocalStack: running (pid $pid) but kms not healthy at $ENDPOINT; log: $LOGFILE"
    return 1
}

cmd_env() {
    cat <<EOF
export AWS_ENDPOINT_URL=$ENDPOINT
export AWS_ACCESS_KEY_ID=test
export AWS_SECRET_ACCESS_KEY=test
export AWS_DEFAULT_REGION=us-east-1
EOF
}

cmd_selfcheck() {
    [[ -x "$VENV/bin/python" ]] || die "no virtualenv at $VENV: run '$0 install' first"
    AWS_ENDPOINT_URL="$ENDPOINT" AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test \
        AWS_DEFAULT_REGION=us-east-1 "$VENV/bin/python" "$SCRIPTS/localstack-selfcheck.py"
}

# boto3 against the emulator, for the scripts that need a KMS call of their own.
kms_py() {
    [[ -x "$VENV/bin/python" ]] || die "no virtualenv at $VENV: run '$0 install' first"
    AWS_ENDPOINT_URL="$ENDPOINT" AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test \
        AWS_DEFAULT_REGION=us-east-1 "$VENV/bin/python" -c "$1" "${@:2}"
}

# kek ALIAS: make a SYMMETRIC_DEFAULT key with that alias unless it exists.
cmd_kek() {
    [[ -n "${1:-}" ]] || die "usage: $0 kek alias/NAME"
    kms_py '
import sys, boto3
k = boto3.client("kms")
alias = sys.argv[1]
names = [a["AliasName"] for p in k.get_paginator("list_aliases").paginate() for a in p["Aliases"]]
if alias not in names:
    kid = k.create_key(KeySpec="SYMMETRIC_DEFAULT", KeyUsage="ENCRYPT_DECRYPT")["KeyMetadata"]["KeyId"]
    k.create_alias(AliasName=alias, TargetKeyId=kid)
print(alias)' "$1"
}

# pubkey ALIAS FILE: GetPublicKey of the key behind ALIAS, as DER, into FILE.
cmd_pubkey() {
    [[ -n "${1:-}" && -n "${2:-}" ]] || die "usage: $0 pubkey alias/NAME FILE"
    kms_py '
import sys, boto3
k = boto3.client("kms")
open(sys.argv[2], "wb").write(k.get_public_key(KeyId=sys.argv[1])["PublicKey"])' "$1" "$2"
}

case "${1:-}" in
    install) cmd_install ;;
    kek) cmd_kek "${2:-}" ;;
    pubkey) cmd_pubkey "${2:-}" "${3:-}" ;;
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    env) cmd_env ;;
    selfcheck) cmd_selfcheck ;;
    *)
        echo "usage: $0 install|start|stop|status|env|selfcheck|kek ALIAS|pubkey ALIAS FILE" >&2
        exit 2
        ;;
esac

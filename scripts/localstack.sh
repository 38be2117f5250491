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
# shellcheck source=scripts/common.sh
source "$SCRIPTS/common.sh"
ROOT="$P11KMS_ROOT"

VENV="${P11KMS_LOCALSTACK_VENV:-$HOME/.cache/p11kms/localstack-venv}"
STATE="${P11KMS_LOCALSTACK_DIR:-/tmp/p11kms-localstack}"
PORT="${P11KMS_LOCALSTACK_PORT:-4566}"
p11kms_server_files "$STATE" localstack
HEALTH_TIMEOUT=120

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
    start="$(p11kms_now)"
    reqs="$(requirements_file)"
    [[ -r "$reqs" ]] || p11kms_die "requirements file not found: $reqs"
    pinned="$(sed -n 's/^localstack-core==\([^[:space:];#]*\).*/\1/p' "$reqs")"
    [[ -n "$pinned" ]] || p11kms_die "no localstack-core==VERSION pin in $reqs"
    echo "==> requirements: $reqs (localstack-core $pinned)"

    if [[ ! -x "$VENV/bin/python" ]]; then
        py="$(base_python)"
        echo "==> creating virtualenv $VENV with $py ($("$py" --version 2>&1))"
        mkdir -p "$(dirname "$VENV")"
        "$py" -m venv "$VENV" || p11kms_die "could not create the virtualenv $VENV"
    fi

    have="$(installed_version)"
    if [[ "$have" == "$pinned" ]]; then
        echo "==> localstack-core $have already installed in $VENV: pip skipped"
    else
        echo "==> pip install -r $reqs${have:+ (localstack-core was $have)}"
        "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$reqs" </dev/null ||
            p11kms_die "pip install failed"
        have="$(installed_version)"
        [[ "$have" == "$pinned" ]] || p11kms_die "localstack-core is '${have:-missing}' after pip, expected $pinned"
    fi
    echo "==> install done in $(p11kms_elapsed "$start") s"
}

# Is KMS "available" or "running" in LocalStack's health report?
healthy() {
    local body
    body="$(curl -fsS --max-time 2 "$ENDPOINT/_localstack/health" 2>/dev/null)" || return 1
    grep -Eq '"kms": *"(available|running)"' <<<"$body"
}

rss_kib() {
    # The resident set of its session (the server plus any children).
    ps -o rss= -s "$1" 2>/dev/null | awk '{ s += $1 } END { print s + 0 }'
}

cmd_start() {
    local pid start
    pid="$(p11kms_running_pid)"
    if [[ -n "$pid" ]]; then
        if healthy; then
            echo "==> LocalStack KMS already running (pid $pid) and healthy at $ENDPOINT"
            return 0
        fi
        p11kms_die "LocalStack (pid $pid) runs but $ENDPOINT/_localstack/health does not report kms; see $LOGFILE or run '$0 stop'"
    fi
    # LocalStack does not exit when its port is taken (it logs "Ready." and never
    # answers), so refuse to start rather than time out.
    p11kms_server_preflight P11KMS_LOCALSTACK_PORT
    [[ -x "$VENV/bin/python" ]] || p11kms_die "no virtualenv at $VENV: run '$0 install' first"
    start="$(p11kms_now)"
    # One log per run (the previous one kept), so that the tail shown on failure is
    # this run's.
    echo "==> starting LocalStack KMS on $ENDPOINT (state $STATE, log $LOGFILE)"
    p11kms_server_spawn "$STATE" "$STATE" env \
        GATEWAY_LISTEN="127.0.0.1:$PORT" \
        SERVICES=kms \
        EAGER_SERVICE_LOADING=1 \
        FILESYSTEM_ROOT="$STATE" \
        SKIP_SSL_CERT_DOWNLOAD=1 \
        DISABLE_EVENTS=1 \
        LOCALSTACK_CLI=0 \
        DNS_ADDRESS=0 \
        GATEWAY_SERVER=hypercorn \
        "$VENV/bin/python" -m localstack.runtime.main

    p11kms_server_wait "$HEALTH_TIMEOUT" 0.2 10
    case $? in
        0)
            echo "==> healthy after $(p11kms_elapsed "$start") s (pid $P11KMS_SERVER_PID, RSS $(rss_kib "$P11KMS_SERVER_PID") KiB)"
            return 0
            ;;
        2) p11kms_server_failed 40 "LocalStack did not even start (no pid file after 10 s)" ;;
        3) p11kms_server_failed 40 "LocalStack exited before becoming healthy" ;;
        *)
            p11kms_server_failed 40 "LocalStack KMS not healthy after ${HEALTH_TIMEOUT} s"
            cmd_stop >&2 || true
            ;;
    esac
    exit 1
}

# LocalStack's hypercorn shutdown stops its asyncio loop from another thread without
# waking it, so now and then the loop sleeps in select() for good after SIGTERM; any
# connection wakes it and it exits.
wake() {
    curl -s -o /dev/null --max-time 1 "$ENDPOINT/_localstack/health" 2>/dev/null || true
}

cmd_stop() {
    p11kms_server_stop LocalStack 0.2 10 wake
}

cmd_status() {
    p11kms_server_state LocalStack
    case $? in
        0)
            echo "LocalStack: running (pid $P11KMS_SERVER_PID, RSS $(rss_kib "$P11KMS_SERVER_PID") KiB), kms healthy at $ENDPOINT"
            echo "log: $LOGFILE"
            ;;
        2)
            echo "LocalStack: running (pid $P11KMS_SERVER_PID) but kms not healthy at $ENDPOINT; log: $LOGFILE"
            return 1
            ;;
        *) return 1 ;;
    esac
}

cmd_env() {
    p11kms_exports AWS_ENDPOINT_URL="$ENDPOINT" AWS_ACCESS_KEY_ID=test \
        AWS_SECRET_ACCESS_KEY=test AWS_DEFAULT_REGION=us-east-1
}

cmd_selfcheck() {
    [[ -x "$VENV/bin/python" ]] || p11kms_die "no virtualenv at $VENV: run '$0 install' first"
    AWS_ENDPOINT_URL="$ENDPOINT" AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test \
        AWS_DEFAULT_REGION=us-east-1 "$VENV/bin/python" "$SCRIPTS/localstack-selfcheck.py"
}

# boto3 against the emulator, for the scripts that need a KMS call of their own.
kms_py() {
    [[ -x "$VENV/bin/python" ]] || p11kms_die "no virtualenv at $VENV: run '$0 install' first"
    AWS_ENDPOINT_URL="$ENDPOINT" AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test \
        AWS_DEFAULT_REGION=us-east-1 "$VENV/bin/python" -c "$1" "${@:2}"
}

# kek ALIAS: make a SYMMETRIC_DEFAULT key with that alias unless it exists.
cmd_kek() {
    [[ -n "${1:-}" ]] || p11kms_die "usage: $0 kek alias/NAME"
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
    [[ -n "${1:-}" && -n "${2:-}" ]] || p11kms_die "usage: $0 pubkey alias/NAME FILE"
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

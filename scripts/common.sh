# shellcheck shell=bash
# Helpers shared by scripts/demo.sh, scripts/test.sh and the emulator scripts
# (scripts/localstack.sh, scripts/gcpkms.sh). Sourced, not run.

# Repository root (the parent of scripts/).
P11KMS_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

# Where `cargo build --release` puts the module.
p11kms_default_module() {
    printf '%s/release/libp11kms.so\n' "${CARGO_TARGET_DIR:-$P11KMS_ROOT/target}"
}

# The libp11 engine's file, or nothing when it is not installed.
p11kms_engine_path() {
    local dir
    dir="$(openssl version -e 2>/dev/null | sed -n 's/^ENGINESDIR: "\(.*\)"$/\1/p')"
    if [[ -n "$dir" && -e "$dir/pkcs11.so" ]]; then
        printf '%s/pkcs11.so\n' "$dir"
    fi
}

# Is the Debian package that provides this probe present? One probe per package:
# a command name, or "engine" for libengine-pkcs11-openssl, or "softhsm".
p11kms_have() {
    case "$1" in
        engine) [[ -n "$(p11kms_engine_path)" ]] ;;
        softhsm) [[ -e /usr/lib/softhsm/libsofthsm2.so ]] ;;
        p11kitproxy) compgen -G "/usr/lib/*/p11-kit-proxy.so" >/dev/null ;;
        *) command -v "$1" >/dev/null 2>&1 ;;
    esac
}

# p11kms_ensure PROBE=PACKAGE ...
# Installs the packages whose probe fails: with apt-get when root (apt-get update
# first, only when something is missing), else prints what to install and exits 1.
p11kms_ensure() {
    local pair probe pkg missing=()
    for pair in "$@"; do
        probe="${pair%%=*}"
        pkg="${pair#*=}"
        if ! p11kms_have "$probe"; then
            missing+=("$pkg")
        fi
    done
    if [[ ${#missing[@]} -eq 0 ]]; then
        return 0
    fi
    if [[ "$(id -u)" -ne 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
        echo "error: missing packages: ${missing[*]}" >&2
        echo "install them first, e.g.: sudo apt-get install ${missing[*]}" >&2
        exit 1
    fi
    echo "==> installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null
}

# p11kms_der TAG HEX: the DER TLV (as hex) of a value given as hex.
p11kms_der() {
    local n=$((${#2} / 2))
    if ((n < 128)); then
        printf '%s%02x%s' "$1" "$n" "$2"
    elif ((n < 256)); then
        printf '%s81%02x%s' "$1" "$n" "$2"
    else
        printf '%s82%04x%s' "$1" "$n" "$2"
    fi
}

# p11kms_read_pubkey --id ID|--label LABEL OUT PKCS11-TOOL...: the public-key object so
# named, as a DER SubjectPublicKeyInfo in OUT; PKCS11-TOOL... is the pkcs11-tool command
# with --module and --token-label. RSA keys come from pkcs11-tool --read-object. EC keys
# come from its --list-objects output (CKA_EC_PARAMS, CKA_EC_POINT) made into an SPKI
# here: pkcs11-tool 0.23's --read-object of an EC public key reads freed memory (under
# valgrind, with SoftHSM as with p11kms: the OSSL_PARAMs it got from EVP_PKEY_export are
# freed before EVP_PKEY_fromdata uses them), so it fails with "cannot create EVP_PKEY" on
# every P-384 key and on some P-256 and P-521 keys, by heap layout. openssl then checks
# that the key parses, and the caller compares it with what another tool exported.
p11kms_read_pubkey() {
    local sel=$1 val=$2 out=$3 listing block params point hdr
    shift 3
    listing="$("$@" --list-objects --type pubkey </dev/null 2>/dev/null)" || return 1
    # The object's block: from its "... Object;" line to the next one.
    block="$(awk -v sel="$sel" -v val="$val" '
        /^[A-Za-z].* Object;/ { if (hit) exit; buf = "" }
        { buf = buf $0 "\n" }
        sel == "--id" && $1 == "ID:" && $2 == val { hit = 1 }
        sel == "--label" && $1 == "label:" && substr($0, index($0, $2)) == val { hit = 1 }
        END { if (hit) printf "%s", buf }' <<<"$listing")"
    if [[ -z $block ]]; then
        echo "p11kms_read_pubkey: no public key with $sel $val" >&2
        return 1
    fi
    if [[ $block != "Public Key Object; EC "* ]]; then
        "$@" --read-object --type pubkey "$sel" "$val" -o "$out" </dev/null || return 1
    else
        params="$(awk '$1 == "EC_PARAMS:" { print $2 }' <<<"$block")"
        point="$(awk '$1 == "EC_POINT:" { print $2 }' <<<"$block")"
        # CKA_EC_POINT is a DER OCTET STRING holding 04||X||Y: take its content.
        case "$point" in
            0481*) hdr=6 ;;
            04*) hdr=4 ;;
            *) hdr=0 ;;
        esac
        if ((hdr == 0)) || [[ $(p11kms_der 04 "${point:hdr}") != "$point" || -z $params ]]; then
            echo "p11kms_read_pubkey: $sel $val: CKA_EC_POINT is not a DER OCTET STRING: $point" >&2
            return 1
        fi
        # SEQUENCE { SEQUENCE { id-ecPublicKey, the curve }, BIT STRING 00||point }
        perl -e 'print pack("H*", $ARGV[0])' \
            "$(p11kms_der 30 "$(p11kms_der 30 "06072a8648ce3d0201$params")$(p11kms_der 03 "00${point:hdr}")")" >"$out"
    fi
    openssl pkey -pubin -inform DER -in "$out" -noout 2>/dev/null || {
        echo "p11kms_read_pubkey: $sel $val: openssl cannot parse the public key" >&2
        return 1
    }
}

# ---- background servers (scripts/localstack.sh, scripts/gcpkms.sh) -------------------
# A server runs in its own session and process group, its pid in a pid file, its output
# in one log per run. The sourcing script sets PORT, calls p11kms_server_files, and
# defines healthy() (exit 0 when the server answers); these functions use them.

# p11kms_server_files STATE NAME: PIDFILE and LOGFILE (STATE/NAME.pid and .log) and
# ENDPOINT (http://127.0.0.1:PORT).
p11kms_server_files() {
    PIDFILE="$1/$2.pid"
    LOGFILE="$1/$2.log"
    # shellcheck disable=SC2034 # used by the sourcing script
    ENDPOINT="http://127.0.0.1:$PORT"
}

p11kms_die() {
    echo "error: $*" >&2
    exit 1
}

# Seconds since the epoch with milliseconds, for timings.
p11kms_now() {
    date +%s.%3N
}

# p11kms_elapsed START: seconds since START (a p11kms_now), one decimal.
p11kms_elapsed() {
    awk -v a="$1" -v b="$(p11kms_now)" 'BEGIN { printf "%.1f", b - a }'
}

# The pid in the pid file when that process is alive, or nothing.
p11kms_running_pid() {
    local pid
    [[ -r "$PIDFILE" ]] || return 0
    pid="$(<"$PIDFILE")"
    if [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null; then
        printf '%s\n' "$pid"
    fi
}

p11kms_port_in_use() {
    (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null
}

# p11kms_server_preflight PORT_VAR: dies when PORT is taken (PORT_VAR is the variable
# to set instead) or curl or setsid is missing.
p11kms_server_preflight() {
    if p11kms_port_in_use; then
        p11kms_die "127.0.0.1:$PORT is already in use by a process not started by this script (set $1)"
    fi
    command -v curl >/dev/null 2>&1 || p11kms_die "curl not found (apt-get install curl)"
    command -v setsid >/dev/null 2>&1 || p11kms_die "setsid not found (apt-get install util-linux)"
}

# p11kms_server_spawn STATE DIR CMD...: with STATE made and the previous run's log kept
# as LOGFILE.1, runs CMD in DIR in the background in its own session (so that stop can
# end the whole group): the inner sh writes its own pid (CMD's once exec'd) to PIDFILE.
p11kms_server_spawn() {
    local state=$1 dir=$2
    shift 2
    mkdir -p "$state"
    rm -f "$PIDFILE"
    if [[ -e "$LOGFILE" ]]; then
        mv -f "$LOGFILE" "$LOGFILE.1"
    fi
    # shellcheck disable=SC2016 # $$ and $@ are the inner sh's
    (
        cd "$dir" || exit 1
        exec setsid sh -c 'echo $$ >"$1"; shift; exec "$@"' sh "$PIDFILE" "$@"
    ) </dev/null >"$LOGFILE" 2>&1 &
}

# p11kms_server_wait TIMEOUT INTERVAL [NOPID_SECS]: polls every INTERVAL s until the pid
# in PIDFILE is alive and healthy() says yes: returns 0 then, with the pid in P11KMS_SERVER_PID.
# Returns 2 when there is no pid file after NOPID_SECS s (when given), 3 when the pid
# written is gone (the server exited; PIDFILE removed), 4 after TIMEOUT s.
p11kms_server_wait() {
    local timeout=$1 interval=$2 nopid=${3:-} started=$SECONDS written
    while ((SECONDS < started + timeout)); do
        P11KMS_SERVER_PID="$(p11kms_running_pid)"
        if [[ -n "$P11KMS_SERVER_PID" ]] && healthy; then
            return 0
        fi
        if [[ -n "$nopid" && ! -e "$PIDFILE" ]] && ((SECONDS - started > nopid)); then
            return 2
        fi
        # The inner sh truncates the pid file before writing it: only a pid that was
        # written and is gone means the server exited.
        written="$(cat "$PIDFILE" 2>/dev/null)" || written=
        if [[ "$written" =~ ^[0-9]+$ ]] && ! kill -0 "$written" 2>/dev/null; then
            rm -f "$PIDFILE"
            return 3
        fi
        sleep "$interval"
    done
    return 4
}

# p11kms_server_failed LINES MESSAGE: "error: MESSAGE; last lines of LOGFILE:" and the
# log's last LINES lines, on stderr.
p11kms_server_failed() {
    echo "error: $2; last lines of $LOGFILE:" >&2
    tail -n "$1" "$LOGFILE" >&2
}

# p11kms_server_stop NAME INTERVAL SECS [POKE]: SIGTERM to the process group in PIDFILE,
# then up to 50 checks INTERVAL s apart (SECS in all; POKE, a command, runs every fifth),
# then SIGKILL; removes PIDFILE. NAME is the server in the "==>" lines.
p11kms_server_stop() {
    local name=$1 interval=$2 secs=$3 poke=${4:-} pid i
    pid="$(p11kms_running_pid)"
    if [[ -z "$pid" ]]; then
        rm -f "$PIDFILE"
        echo "==> $name is not running"
        return 0
    fi
    echo "==> stopping $name (process group $pid)"
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    for ((i = 1; i <= 50; i++)); do
        kill -0 -- "-$pid" 2>/dev/null || break
        if [[ -n "$poke" ]] && ((i % 5 == 0)); then
            "$poke"
        fi
        sleep "$interval"
    done
    if kill -0 -- "-$pid" 2>/dev/null; then
        echo "==> still running after $secs s: SIGKILL"
        kill -KILL -- "-$pid" 2>/dev/null || true
        sleep 0.5
    fi
    rm -f "$PIDFILE"
    echo "==> stopped"
}

# p11kms_server_state NAME: "NAME: not running" and 1 when PIDFILE names no live
# process; else the pid in P11KMS_SERVER_PID and 0 when healthy() says yes, 2 when not.
p11kms_server_state() {
    P11KMS_SERVER_PID="$(p11kms_running_pid)"
    if [[ -z "$P11KMS_SERVER_PID" ]]; then
        echo "$1: not running"
        return 1
    fi
    healthy && return 0
    return 2
}

# p11kms_exports NAME=VALUE...: the lines `eval "$(script env)"` runs.
p11kms_exports() {
    local kv
    for kv in "$@"; do
        printf 'export %s\n' "$kv"
    done
}

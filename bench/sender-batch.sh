#!/usr/bin/env bash
# Batch latency of the real sender-slack Lambda binary, run as Lambda runs it on loopback.
#
#   bench/sender-batch.sh           # build release binaries, measure, print a markdown table
#
# Settings (environment): ROUNDS (batches, default 20), RECORDS (records per batch, default
# 10), DELAY_MS (how long the Slack stand-in takes per post, default 200), NO_BUILD=1 (use the
# binaries as built), KEEP=1 (keep the temp directory with the function's log), RUST_LOG (the
# function's log filter, default info as shipped), COLD_START=1 (also measure the cold start of
# every function binary built from functions/*, RUNS fresh processes each, default 5).
#
# What it does: builds `sender-slack` and `herald-lambda-bench` in release (one cargo
# invocation each, so the sender is the binary it deploys as), starts DynamoDB
# Local and moto with `scripts/services.sh start` unless they already run (and stops them at
# the end only if it started them), then `herald-lambda-bench sender-batch`:
#   1. creates a fresh table and the four channel queues (unique names), seeds Slack on with a
#      bot token, RECORDS users with a known Slack member id, and for each round an event
#      with one queued Slack DM per user;
#   2. serves a Slack stand-in (`chat.postMessage` answered after DELAY_MS) and an emulated
#      Lambda Runtime API on free 127.0.0.1 ports, and spawns target/release/sender-slack
#      against them (Lambda's environment, DynamoDB Local and moto as endpoints);
#   3. hands it one SQS batch per round and times it (handed out → /response), checks every
#      answer has no failed record, Slack got exactly one post per record and every delivery
#      is `sent`; reads the cold start (spawn → first `next`) and peak RSS (VmHWM);
#   4. kills the function and deletes the table and queues, whatever happens.
# Nothing leaves the machine: every address is loopback and the function gets no proxy.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

ROUNDS="${ROUNDS:-20}"
RECORDS="${RECORDS:-10}"
DELAY_MS="${DELAY_MS:-200}"
RUNS="${RUNS:-5}"

log() { printf '[bench] %s\n' "$*" >&2; }
die() {
    printf '[bench] ERROR: %s\n' "$*" >&2
    exit 1
}
command -v python3 >/dev/null || die "python3 is needed (to find the target directory)"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/herald-sender-batch.XXXXXX")"
STARTED_SERVICES=0
BENCH_PID=""

cleanup() {
    local rc=$? i
    trap - EXIT INT TERM HUP
    # The harness removes what it created and kills the function when it is told to stop.
    if [[ -n "$BENCH_PID" ]] && kill -0 "$BENCH_PID" 2>/dev/null; then
        kill -TERM "$BENCH_PID" 2>/dev/null || true
        for ((i = 0; i < 100; i++)); do
            kill -0 "$BENCH_PID" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$BENCH_PID" 2>/dev/null || true
        wait "$BENCH_PID" 2>/dev/null || true
    fi
    if [[ "$STARTED_SERVICES" == 1 ]]; then
        log "stopping the emulators this script started"
        scripts/services.sh stop || true
    fi
    if [[ "${KEEP:-0}" == 1 ]]; then
        log "kept $WORK"
    else
        rm -rf "$WORK"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

# One cargo invocation per function: built together, packages share their dependencies'
# features (the harness's HTTP server would add hyper's server half to the sender), and the
# binary measured would not be the one deployed.
if [[ "${NO_BUILD:-0}" != 1 ]]; then
    FUNCTIONS=(sender-slack)
    if [[ "${COLD_START:-0}" == 1 ]]; then
        FUNCTIONS=()
        for dir in functions/*/; do FUNCTIONS+=("$(basename "$dir")"); done
    fi
    for function in "${FUNCTIONS[@]}"; do
        log "cargo build --release -p $function"
        cargo build --release -q -p "$function"
    done
    log "cargo build --release -p herald-lambda-bench"
    cargo build --release -q -p herald-lambda-bench
fi
TARGET_DIR="$(cargo metadata --format-version 1 --no-deps 2>/dev/null |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')"
SENDER="$TARGET_DIR/release/sender-slack"
BENCH="$TARGET_DIR/release/herald-lambda-bench"
[[ -x "$SENDER" && -x "$BENCH" ]] || die "release binaries missing under $TARGET_DIR/release"

if scripts/services.sh status >/dev/null 2>&1 && [[ -f target/test-services/dev.env ]]; then
    log "DynamoDB Local and moto already run; using them"
else
    log "starting DynamoDB Local and moto (scripts/services.sh start)"
    STARTED_SERVICES=1
    scripts/services.sh start >/dev/null
fi
# shellcheck source=/dev/null
source target/test-services/dev.env
[[ -n "${HERALD_TEST_DYNAMODB_URL:-}" && -n "${HERALD_TEST_MOTO_URL:-}" ]] ||
    die "target/test-services/dev.env does not name the emulators"

# How busy the machine is before the run (other work skews the numbers).
busy() {
    local a b total=0 i idle
    read -r -a a </proc/stat || return 0
    sleep 1
    read -r -a b </proc/stat || return 0
    for i in 1 2 3 4 5 6 7 8; do total=$((total + b[i] - a[i])); done
    idle=$((b[4] - a[4] + b[5] - a[5]))
    ((total > 0)) && echo "$((100 * (total - idle) / total))% of $(nproc) cores"
}
BUSY_BEFORE="$(busy || echo unknown)"
log "machine busy before the run: $BUSY_BEFORE"

# In the background so that a signal reaches this script's trap at once; the harness answers
# SIGTERM by stopping the function and removing what it created.
"$BENCH" sender-batch --binary "$SENDER" \
    --dynamodb "$HERALD_TEST_DYNAMODB_URL" --sqs "$HERALD_TEST_MOTO_URL" \
    --records "$RECORDS" --delay-ms "$DELAY_MS" --rounds "$ROUNDS" \
    --log-dir "$WORK" >"$WORK/sender-batch.md" &
BENCH_PID=$!
wait "$BENCH_PID" || die "herald-lambda-bench sender-batch failed (KEEP=1 keeps the function's log)"
BENCH_PID=""

echo
echo "$(nproc) cores, $(uname -r); machine busy before the run: $BUSY_BEFORE."
cat "$WORK/sender-batch.md"

if [[ "${COLD_START:-0}" == 1 ]]; then
    "$BENCH" cold-start --release-dir "$TARGET_DIR/release" --functions-dir functions \
        --runs "$RUNS" --log-dir "$WORK" >"$WORK/cold-start.md" &
    BENCH_PID=$!
    wait "$BENCH_PID" || die "herald-lambda-bench cold-start failed"
    BENCH_PID=""
    cat "$WORK/cold-start.md"
fi

#!/usr/bin/env bash
# Every benchmark in one command, then the README's performance table with each target.
#
#   bench/run.sh                 # about 17 minutes on 2 cores, its builds (fat LTO) included
#
# Runs, in order (each also works alone and prints its own detailed tables):
#   1. cargo bench -p herald-shared --bench routing --bench intake   (criterion, medians)
#   2. bench/aws-requests.sh      DynamoDB and SQS requests per event (DynamoDB Local, moto)
#   3. bench/intake-load.sh       herald-local's intake against a bare axum server
#   4. COLD_START=1 bench/sender-batch.sh
#                                 a sender-slack batch of 10 against a 200 ms sink, and the
#                                 cold start, RSS and size of every function binary
# then prints the summary tables (markdown) with MET / MISSED against each target. The
# emulators are started once (scripts/services.sh) unless they already run, and stopped at the
# end if this script started them. The full output of each step is kept in OUT (default
# target/bench-run/), the summary in OUT/summary.md.
# Other work on the machine skews every number: run it on an otherwise idle machine.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

OUT="${OUT:-$ROOT/target/bench-run}"
mkdir -p "$OUT"
log() { printf '[bench] %s\n' "$*" >&2; }
die() {
    printf '[bench] ERROR: %s\n' "$*" >&2
    exit 1
}
command -v python3 >/dev/null || die "python3 is needed (for the summary)"

STARTED_SERVICES=0
cleanup() {
    local rc=$?
    trap - EXIT INT TERM HUP
    if [[ "$STARTED_SERVICES" == 1 ]]; then
        log "stopping the emulators this script started"
        scripts/services.sh stop >/dev/null 2>&1 || true
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

if scripts/services.sh status >/dev/null 2>&1 && [[ -f target/test-services/dev.env ]]; then
    log "DynamoDB Local and moto already run; using them"
else
    log "starting DynamoDB Local and moto (scripts/services.sh start)"
    STARTED_SERVICES=1
    scripts/services.sh start >/dev/null
fi
# shellcheck source=/dev/null
source target/test-services/dev.env

started=$SECONDS
log "1/4 cargo bench -p herald-shared --bench routing --bench intake"
cargo bench -p herald-shared --bench routing --bench intake 2>&1 | tee "$OUT/criterion.txt" >&2
log "2/4 bench/aws-requests.sh"
bench/aws-requests.sh 2>&1 | tee "$OUT/aws-requests.txt" >&2
log "3/4 bench/intake-load.sh"
bench/intake-load.sh 2>"$OUT/intake-load.log" | tee "$OUT/intake-load.md" >&2
log "4/4 COLD_START=1 bench/sender-batch.sh"
COLD_START=1 bench/sender-batch.sh 2>"$OUT/sender-batch.log" | tee "$OUT/sender-batch.md" >&2

TARGET_DIR="$(cargo metadata --format-version 1 --no-deps |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')"
python3 bench/summary.py "$TARGET_DIR/criterion" "$OUT" "$((SECONDS - started))" |
    tee "$OUT/summary.md"

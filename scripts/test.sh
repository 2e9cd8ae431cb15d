#!/usr/bin/env bash
# The one command that runs every test, on a fresh machine or a warm one:
#   installs what is missing (.tools/), starts DynamoDB Local and moto on free
#   loopback ports, runs fmt, clippy and `cargo test --workspace "$@"`, then
#   any scripts/test-extra.d/*.sh hooks. Services are stopped on any exit.
# Example: scripts/test.sh -- --nocapture
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$HERALD_ROOT"

if [[ "${CI:-}" == "true" ]]; then export CARGO_TERM_COLOR=never; fi
# Incremental compilation's caches pay off across small edits, not in a whole run: from
# scratch they added 1.3 GB of disk (and the time to write them).
export CARGO_INCREMENTAL=0

STEP=0
# How long each step took is printed on exit, passed or failed, so a slow step shows in the
# CI log.
STEP_NAME=""
STEP_START=$SECONDS
TIMINGS=()
end_step() {
    if [[ -n "$STEP_NAME" ]]; then
        TIMINGS+=("$(printf '%5d s  [%d] %s' $((SECONDS - STEP_START)) "$STEP" "$STEP_NAME")")
    fi
}
step() {
    end_step
    STEP=$((STEP + 1))
    STEP_NAME="$*"
    STEP_START=$SECONDS
    printf '\n==> [%d] %s\n' "$STEP" "$*"
}
timings() {
    end_step
    STEP_NAME=""
    printf '\nstep timings (total %d s):\n' "$SECONDS"
    printf '%s\n' "${TIMINGS[@]}"
}

# Stop every service this run started, whatever the reason for exiting.
cleanup() {
    local rc=$?
    trap - EXIT INT TERM HUP
    timings
    stop_service dynamodb DynamoDBLocal || true
    stop_service moto moto_server || true
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

step "Install tools (skipped when present)"
check_disk 6
install_service_deps
ensure_rust_components

step "Start DynamoDB Local and moto"
start_dynamodb dynamodb
start_moto moto
export_test_env
echo "HERALD_TEST_DYNAMODB_URL=$HERALD_TEST_DYNAMODB_URL"
echo "HERALD_TEST_MOTO_URL=$HERALD_TEST_MOTO_URL"

step "cargo fmt --all -- --check"
cargo fmt --all -- --check

step "cargo clippy --workspace --all-targets -- -D warnings"
cargo clippy --workspace --all-targets -- -D warnings

step "cargo test --workspace $*"
mkdir -p target
TEST_LOG=target/test-output.log
# Keep cargo's own output on screen and add up its per-binary summaries at the end.
set +e
cargo test --workspace "$@" 2>&1 | tee "$TEST_LOG"
TEST_STATUS=${PIPESTATUS[0]}
set -e
read -r PASSED FAILED < <(awk '/^test result:/ {
        for (i = 1; i <= NF; i++) {
            if ($(i + 1) ~ /^passed/) p += $i
            if ($(i + 1) ~ /^failed/) f += $i
        }
    } END { print p + 0, f + 0 }' "$TEST_LOG")
if [[ "$TEST_STATUS" -ne 0 ]]; then
    printf '\ncargo tests: %s passed, %s failed\n' "$PASSED" "$FAILED"
    exit "$TEST_STATUS"
fi

# Hook for later checks (infrastructure lint, ...): each runs in its own bash,
# with the test environment and the venv's tools (cfn-lint) on PATH.
shopt -s nullglob
for hook in scripts/test-extra.d/*.sh; do
    step "$hook"
    PATH="$HERALD_VENV/bin:$PATH" bash "$hook"
done

printf '\n==> All checks passed\n'
printf 'cargo tests: %s passed, %s failed\n' "$PASSED" "$FAILED"

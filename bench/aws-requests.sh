#!/usr/bin/env bash
# AWS requests per event: runs the `aws_requests` integration test (one scan_added event on
# products of 10, 100 and 1,000 members, against DynamoDB Local and moto's SQS) and prints
# its table. The event's clients reach the emulators through a proxy that hands on every
# answer 50 ms late, as a network would, so requests sent together count as one round trip
# however fast the emulators answer on loopback. Built optimized (the `bench` profile), as
# the functions ship. Starts the emulators with
# `scripts/services.sh start` unless HERALD_TEST_DYNAMODB_URL is already set; they keep
# running (`scripts/services.sh stop`).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

if [[ -z "${HERALD_TEST_DYNAMODB_URL:-}" ]]; then
    scripts/services.sh start >&2
    # shellcheck source=/dev/null
    source target/test-services/dev.env
fi

output="$(mktemp)"
trap 'rm -f "$output"' EXIT

started=$SECONDS
cargo test --profile bench -p herald-tests --test integration aws_requests -- \
    --nocapture --test-threads=1 2>&1 |
    tee "$output"

echo
echo "## AWS requests per scan_added event ($((SECONDS - started)) s including the build)"
echo
grep '^|' "$output"
echo
grep -E '^(members: |[0-9]+ members: )' "$output"

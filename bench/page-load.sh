#!/usr/bin/env bash
# The page's weight and time to interactive (bench/page-load.mjs) against herald-local built
# as it ships (the local profile), in Debian's Chromium. Needs what scripts/test.sh installs
# for the page's tests (chromium, tests/browser/node_modules).
#
#   bench/page-load.sh           # LOADS=30 by default
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
[[ -d tests/browser/node_modules/playwright-core ]] || (cd tests/browser && npm ci --no-audit --no-fund --loglevel=error)
cargo build --profile local -p herald-local
HERALD_LOCAL_BIN="$ROOT/target/local/herald-local" node bench/page-load.mjs

#!/usr/bin/env bash
# Herald's page in a real browser: Debian's Chromium (installed when missing) driven by
# playwright-core (npm, pinned in tests/browser/package-lock.json), against the herald-local
# that `cargo test` built. Run by scripts/test.sh, or alone as
# `bash scripts/test-extra.d/browser.sh`. A failing test leaves a screenshot in target/browser/.
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
cd "$HERALD_ROOT"

CHROMIUM=/usr/bin/chromium
if [[ ! -x "$CHROMIUM" ]]; then apt_install chromium chromium-driver; fi
[[ -x "$CHROMIUM" ]] || die "Debian's chromium did not install at $CHROMIUM"
if ! have node || ! have npm; then apt_install nodejs npm; fi

DIR=tests/browser
STAMP="$DIR/node_modules/.herald-stamp"
LOCK_SUM="$(sha256sum "$DIR/package-lock.json" | cut -d' ' -f1)"
if [[ ! -f "$STAMP" || "$(cat "$STAMP")" != "$LOCK_SUM" ]]; then
    log "npm ci in $DIR"
    (cd "$DIR" && npm ci --no-audit --no-fund --loglevel=error)
    echo "$LOCK_SUM" >"$STAMP"
fi

cargo build -p herald-local
log "$("$CHROMIUM" --version 2>/dev/null || echo chromium)"
rm -rf target/browser
CHROMIUM="$CHROMIUM" HERALD_LOCAL_BIN="$HERALD_ROOT/target/debug/herald-local" \
    node --test --test-concurrency=1 "$DIR"/*.test.mjs

#!/usr/bin/env bash
# Builds every function under functions/ for AWS Lambda as `sam build` would (`cargo lambda
# build`, x86_64, provided.al2023), and checks each one produced its `bootstrap`. Run by
# scripts/test.sh, or alone as `bash scripts/test-extra.d/lambda-build.sh`.
#
# The check builds with the `lambda-check` profile (release's settings without LTO and
# size optimization) because a proof that every function compiles and links for Lambda does
# not need release's slow optimizations; `HERALD_LAMBDA_PROFILE=release` builds exactly what
# `sam build` deploys.
#
# cargo-lambda comes from PyPI (a prebuilt binary that brings zig as its linker) into a venv of
# its own, .tools/cargo-lambda, when missing; compiling it from crates.io would take far longer.
# arm64 builds need the aarch64 standard library, which this machine's toolchain lacks: the
# README's deploy section says how to build for arm64 where it is installed.
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
cd "$HERALD_ROOT"

CARGO_LAMBDA_SPEC="cargo-lambda==1.9.2"
VENV="$HERALD_TOOLS/cargo-lambda"
STAMP="$VENV/.herald-stamp"

if [[ ! -f "$STAMP" || "$(cat "$STAMP")" != "$CARGO_LAMBDA_SPEC" || ! -x "$VENV/bin/cargo-lambda" ]]; then
    log "installing $CARGO_LAMBDA_SPEC into ${VENV#"$HERALD_ROOT"/}"
    have python3 || apt_install python3 python3-venv
    if ! python3 -c 'import ensurepip' 2>/dev/null; then apt_install python3-venv; fi
    rm -rf "$VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet "$CARGO_LAMBDA_SPEC" >&2
    [[ -x "$VENV/bin/cargo-lambda" ]] || die "cargo-lambda missing after pip install"
    printf '%s\n' "$CARGO_LAMBDA_SPEC" >"$STAMP"
fi
export PATH="$VENV/bin:$PATH"

# The package name of every crate under functions/ (each is one Lambda function).
packages=()
for manifest in functions/*/Cargo.toml; do
    name="$(sed -n 's/^name *= *"\(.*\)"/\1/p' "$manifest" | head -n 1)"
    [[ -n "$name" ]] || die "no package name in $manifest"
    packages+=("$name")
done
((${#packages[@]} > 0)) || die "no function crates under functions/"

args=()
for p in "${packages[@]}"; do args+=(-p "$p"); done
PROFILE="${HERALD_LAMBDA_PROFILE:-lambda-check}"
log "cargo lambda build --profile $PROFILE ${args[*]}"
cargo lambda build --profile "$PROFILE" "${args[@]}"

for p in "${packages[@]}"; do
    bootstrap="target/lambda/$p/bootstrap"
    [[ -x "$bootstrap" ]] || die "cargo lambda build produced no $bootstrap"
    size=$(stat -c %s "$bootstrap")
    log "$bootstrap: $((size / 1024)) KiB"
done
log "lambda builds passed: ${#packages[@]} function(s)"

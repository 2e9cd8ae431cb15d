#!/usr/bin/env bash
# Fuzzes Herald's parsers and templates with cargo-fuzz (libFuzzer). The targets live in
# fuzz/fuzz_targets/: event, defectdojo_webhook, system_settings, notification_settings,
# webhook, render.
#
#   scripts/fuzz.sh TARGET [SECONDS]   one target, for SECONDS (600 unless told)
#   scripts/fuzz.sh all [SECONDS]      every target in turn, SECONDS each
#   scripts/fuzz.sh list               the targets
#
# Stops at the first crash (a panic, a failed check, a timeout, running out of memory) and
# exits non-zero, printing the input that caused it (fuzz/artifacts/TARGET/...) and how to
# replay it. Every target reads its seeds from fuzz/corpus/TARGET and never writes there; the
# corpus it grows goes to target/fuzz-corpus/TARGET (gitignored), so a later run starts where
# the last one stopped. Extra libFuzzer options go in HERALD_FUZZ_ARGS, e.g. `-jobs=2`.
#
# cargo-fuzz is installed from crates.io into .tools/cargo-fuzz when missing. The targets are
# built without a sanitizer (`-s none`): the code under test is safe Rust (the workspace forbids
# `unsafe`), so the address sanitizer would only slow every run down, and without it cargo-fuzz
# passes rustc no nightly-only flag, so the stable toolchain builds the targets.
# HERALD_FUZZ_SANITIZER=address brings it back; its flag (`-Zsanitizer=address`) is
# nightly-only, which RUSTC_BOOTSTRAP=1 lets a stable compiler accept, so that run sets it.
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$HERALD_ROOT"

CARGO_FUZZ_VERSION="0.13.2"
CARGO_FUZZ_ROOT="$HERALD_TOOLS/cargo-fuzz"
CARGO_FUZZ="$CARGO_FUZZ_ROOT/bin/cargo-fuzz"
SANITIZER="${HERALD_FUZZ_SANITIZER:-none}"
# Fewer, larger codegen units than cargo-fuzz's default of one: the build (which compiles the
# AWS SDK the shared crate links) takes minutes less, the runs are somewhat slower.
BUILD_ARGS=(--sanitizer "$SANITIZER" --codegen-units 16)
if [[ "$SANITIZER" != none ]]; then export RUSTC_BOOTSTRAP=1; fi

usage() {
    sed -n '2,/^$/s/^# \{0,1\}//p' "${BASH_SOURCE[0]}" >&2
    exit 2
}

targets() {
    local f
    for f in fuzz/fuzz_targets/*.rs; do basename "$f" .rs; done
}

ensure_cargo_fuzz() {
    if [[ -x "$CARGO_FUZZ" && "$("$CARGO_FUZZ" --version 2>/dev/null)" == "cargo-fuzz $CARGO_FUZZ_VERSION" ]]; then
        return 0
    fi
    have cargo || die "cargo not found (install Rust with rustup first)"
    # libfuzzer-sys compiles libFuzzer itself, which is C++.
    have c++ || apt_install g++
    log "cargo install cargo-fuzz $CARGO_FUZZ_VERSION into ${CARGO_FUZZ_ROOT#"$HERALD_ROOT"/}"
    cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked --root "$CARGO_FUZZ_ROOT" >&2
    [[ -x "$CARGO_FUZZ" ]] || die "cargo-fuzz missing after cargo install"
}

# run_target NAME SECONDS: fuzz NAME for SECONDS; non-zero on a crash.
run_target() {
    local name="$1" seconds="$2"
    local corpus="$HERALD_ROOT/target/fuzz-corpus/$name" seeds="$HERALD_ROOT/fuzz/corpus/$name"
    local log="$HERALD_ROOT/target/fuzz-logs/$name.log"
    mkdir -p "$corpus" "$seeds" "$(dirname "$log")"
    log "fuzzing $name for ${seconds}s (log: ${log#"$HERALD_ROOT"/})"
    local status=0
    # shellcheck disable=SC2086 # HERALD_FUZZ_ARGS is a list of options
    "$CARGO_FUZZ" run "${BUILD_ARGS[@]}" "$name" "$corpus" "$seeds" -- \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        ${HERALD_FUZZ_ARGS:-} >"$log" 2>&1 || status=$?
    local runs speed
    runs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)"
    speed="$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)"
    if [[ "$status" -ne 0 ]]; then
        printf '[herald] ERROR: fuzz target %s failed (exit %s):\n' "$name" "$status" >&2
        local cause='panicked at|^==[0-9]+== ?ERROR'
        if grep -qE "$cause" "$log"; then
            grep -m 1 -A 12 -E "$cause" "$log" >&2
        else
            tail -n 40 "$log" >&2
        fi
        local input
        input="$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -n 1)"
        if [[ -n "$input" ]]; then
            printf '[herald] crash input: %s\n' "${input#"$HERALD_ROOT"/}" >&2
            printf '[herald] replay it: %s run %s %s %s\n' "${CARGO_FUZZ#"$HERALD_ROOT"/}" \
                "${BUILD_ARGS[*]}" "$name" "${input#"$HERALD_ROOT"/}" >&2
        fi
        return 1
    fi
    log "$name: ${runs:-?} runs, ${speed:-?} runs/s, no crash"
}

[[ $# -ge 1 ]] || usage
what="$1"
seconds="${2:-600}"
[[ "$seconds" =~ ^[1-9][0-9]*$ ]] || die "SECONDS must be a positive whole number, not '$seconds'"

case "$what" in
    list)
        targets
        exit 0
        ;;
    all) mapfile -t chosen < <(targets) ;;
    -h | --help) usage ;;
    *)
        [[ -f "fuzz/fuzz_targets/$what.rs" ]] || die "no fuzz target '$what'; one of: $(targets | tr '\n' ' ')"
        chosen=("$what")
        ;;
esac

ensure_cargo_fuzz
log "building the fuzz targets (cargo fuzz build ${BUILD_ARGS[*]})"
"$CARGO_FUZZ" build "${BUILD_ARGS[@]}" >&2

failed=()
for name in "${chosen[@]}"; do
    run_target "$name" "$seconds" || failed+=("$name")
done
if ((${#failed[@]} > 0)); then
    die "fuzzing found a crash in: ${failed[*]}"
fi
log "fuzzing passed: ${#chosen[@]} target(s), ${seconds}s each"

#!/usr/bin/env bash
# A short fuzzing run of every fuzz target (fuzz/fuzz_targets/): HERALD_FUZZ_SECONDS each,
# 15 by default, after building them (the first time, installing cargo-fuzz into .tools/).
# Fails on any crash and prints the input that caused it. Run by scripts/test.sh, or alone as
# `bash scripts/test-extra.d/fuzz.sh`; longer runs by hand: `scripts/fuzz.sh TARGET SECONDS`.
set -euo pipefail

exec bash "$(dirname "${BASH_SOURCE[0]}")/../fuzz.sh" all "${HERALD_FUZZ_SECONDS:-15}"

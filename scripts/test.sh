#!/usr/bin/env bash
# The whole test suite, as CI runs it: install dependencies and fixtures, build the
# release preset, run every GoogleTest suite with ctest, re-run the storage suite
# (every GGUF rejection path) under ASan+UBSan, and fuzz the GGUF reader for a bounded
# time. Usage: scripts/test.sh   (STRATA_FUZZ_SECONDS=60 by default)
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc)

scripts/setup.sh
export STRATA_CACHE_DIR="${STRATA_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/strata}"
# setup.sh fetched the fixtures: a test that cannot find them must fail, not skip.
export STRATA_REQUIRE_FIXTURES=1

echo "== build (release)"
cmake --preset release >/dev/null
cmake --build --preset release -j"$jobs"

echo "== unit and integration tests (release)"
ctest --preset release -j"$jobs"

echo "== storage tests under ASan+UBSan"
cmake --preset asan >/dev/null
cmake --build --preset asan -j"$jobs" --target storage_tests
./build/asan/tests/storage_tests --gtest_brief=1

echo "== fuzz the GGUF reader"
scripts/fuzz.sh "${STRATA_FUZZ_SECONDS:-60}"

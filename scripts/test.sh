#!/usr/bin/env bash
# The whole test suite, as CI runs it: install dependencies and fixtures, build the
# release preset, run every GoogleTest suite with ctest, re-run the storage suite
# (every GGUF rejection path) under ASan+UBSan, and fuzz the GGUF reader for a bounded
# time. Usage: scripts/test.sh   (STRATA_FUZZ_SECONDS=15 per target by default)
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
ctest_log=$(mktemp)
trap 'rm -f "$ctest_log"' EXIT
ctest --preset release -j"$jobs" | tee "$ctest_log"
ctest_count=$(sed -n 's/.*tests passed, 0 tests failed out of \([0-9]*\).*/\1/p' "$ctest_log")

echo "== storage tests under ASan+UBSan"
cmake --preset asan >/dev/null
cmake --build --preset asan -j"$jobs" --target storage_tests
asan_count=$(./build/asan/tests/storage_tests --gtest_list_tests | grep -c '^  ')
./build/asan/tests/storage_tests --gtest_brief=1

echo "== fuzz every parser of outside input"
scripts/fuzz.sh "${STRATA_FUZZ_SECONDS:-15}"
fuzz_count=$(grep -c '^strata_fuzz_target(' tests/fuzz/CMakeLists.txt)

# Reaching this line means every step passed (set -e); one total for CI to read.
echo "tests: $((ctest_count + asan_count + fuzz_count)) passed, 0 failed"

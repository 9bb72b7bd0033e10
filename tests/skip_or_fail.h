// A test that cannot find what it needs (a fixture setup fetches, a tool setup
// installs, root, a filesystem with O_DIRECT) skips when run by hand and fails when
// fixtures are required (STRATA_REQUIRE_FIXTURES, set by scripts/test.sh as in CI):
// there, a missing fixture is never a silently smaller suite.
#pragma once

#include <gtest/gtest.h>

#include <cstdlib>

#define STRATA_SKIP_OR_FAIL(why)                            \
  do {                                                      \
    if (std::getenv("STRATA_REQUIRE_FIXTURES")) FAIL() << why; \
    GTEST_SKIP() << why;                                    \
  } while (0)

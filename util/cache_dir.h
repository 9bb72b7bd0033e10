// Where strata keeps downloaded test data and generated demo models: $STRATA_CACHE_DIR,
// else $XDG_CACHE_HOME/strata, else ~/.cache/strata (the same rule as scripts/setup.sh).
// Pure apart from reading the environment; thread-safe.
#pragma once

#include <string>

namespace strata {

// Empty if no rule applies (no HOME and nothing set).
std::string CacheDir();

}  // namespace strata

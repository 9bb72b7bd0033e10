// Belady's MIN against a brute-force optimum: on small random traces, no eviction
// choice sequence hits more often, and MIN reaches the best found by trying them all.
#include "tiers/belady.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <random>
#include <set>
#include <vector>

namespace strata::tiers {
namespace {

// The most hits any eviction sequence achieves (exhaustive search).
uint64_t BestPossible(const std::vector<uint32_t>& trace, size_t capacity) {
  std::function<uint64_t(size_t, std::set<uint32_t>)> go = [&](size_t i, std::set<uint32_t> c) {
    if (i == trace.size()) return uint64_t{0};
    if (c.count(trace[i])) return 1 + go(i + 1, c);
    if (c.size() < capacity) {
      c.insert(trace[i]);
      return go(i + 1, c);
    }
    uint64_t best = 0;
    for (uint32_t victim : std::vector<uint32_t>(c.begin(), c.end())) {
      std::set<uint32_t> next = c;
      next.erase(victim);
      next.insert(trace[i]);
      best = std::max(best, go(i + 1, next));
    }
    return best;
  };
  return go(0, {});
}

TEST(Belady, MatchesTheExhaustiveOptimumOnSmallTraces) {
  std::mt19937 rng(9);
  for (int round = 0; round < 40; ++round) {
    std::vector<uint32_t> trace(12);
    for (uint32_t& k : trace) k = rng() % 6;
    for (size_t capacity : {1u, 2u, 3u}) {
      EXPECT_EQ(BeladyHits(trace, capacity), BestPossible(trace, capacity))
          << "round " << round << " capacity " << capacity;
    }
  }
}

TEST(Belady, KnownCases) {
  const std::vector<uint32_t> trace = {1, 2, 3, 4, 1, 2, 5, 1, 2, 3, 4, 5};
  EXPECT_EQ(BeladyHits(trace, 3), 5u);  // the textbook sequence: 7 misses with 3 frames
  EXPECT_EQ(BeladyHits(trace, 0), 0u);
  EXPECT_EQ(BeladyHits(trace, 100), trace.size() - 5);  // only first uses miss
  EXPECT_EQ(BeladyHits({}, 4), 0u);
}

}  // namespace
}  // namespace strata::tiers

// The expert prefetch scheduler on its own: which hints it issues, in which order and
// when, against a recording sink and a scripted router oracle (no cache, no model).
#include "prefetch/prefetcher.h"

#include <algorithm>
#include <map>
#include <memory>
#include <utility>
#include <vector>

#include "gtest/gtest.h"

namespace strata::prefetch {
namespace {

using Hints = std::vector<std::pair<uint32_t, uint32_t>>;  // (layer, expert) in order

struct Recorder : HintSink {
  explicit Recorder(Hints* hints, int* tokens) : hints_(hints), tokens_(tokens) {}
  void BeginToken() override { ++*tokens_; }
  void Hint(uint32_t layer, uint32_t expert) override { hints_->emplace_back(layer, expert); }
  Hints* hints_;
  int* tokens_;
};

// Predicts from a script: layer -> experts; counts calls per layer.
struct ScriptedOracle : RouterOracle {
  std::vector<int32_t> Predict(uint32_t layer) override {
    ++calls[layer];
    return script[layer];
  }
  std::map<uint32_t, std::vector<int32_t>> script;
  std::map<uint32_t, int> calls;
};

struct Fixture {
  // MoE layers 1, 2, 4, 5 (0 and 3 dense); layer 2 hash-routed over 4 tokens, k = 2.
  explicit Fixture(PrefetchMode mode, uint32_t lookahead = 2)
      : hash_table{/*token 0*/ 10, 11, /*1*/ 12, 13, /*2*/ 14, 15, /*3*/ 16, 17},
        prefetcher(std::make_unique<Recorder>(&hints, &tokens), mode, lookahead, {1, 2, 4, 5},
                   HashRouting{{nullptr, nullptr, hash_table.data()}, 2}) {
    oracle.script = {{1, {1, 2}}, {2, {3, 4}}, {4, {5, 6}}, {5, {7, 8}}};
  }
  Hints hints;
  int tokens = 0;
  std::vector<int32_t> hash_table;
  ScriptedOracle oracle;
  Prefetcher prefetcher;
};

TEST(Prefetcher, RouterLookaheadHintsTheNextMoeLayersSkippingDenseOnesAndHashLayersExactly) {
  Fixture f(PrefetchMode::kRouter);
  const int32_t token[] = {3};
  f.prefetcher.BeginToken(token);
  EXPECT_EQ(f.tokens, 1);
  // The hash layer is known from the token alone, before any layer ran.
  EXPECT_EQ(f.hints, (Hints{{2, 16}, {2, 17}}));
  f.hints.clear();
  const int32_t routed[] = {0, 9};
  f.prefetcher.OnRouted(1, routed, f.oracle);
  // Next two MoE layers after 1: 2 (hash: exact, already hinted, so nothing) and 4
  // (oracle). The dense layer 3 is skipped; layer 2's router is never applied.
  EXPECT_EQ(f.hints, (Hints{{4, 5}, {4, 6}}));
  EXPECT_EQ(f.oracle.calls.count(2), 0u);
  EXPECT_EQ(f.oracle.calls[4], 1);
  f.hints.clear();
  f.prefetcher.OnRouted(4, routed, f.oracle);  // only layer 5 is left
  EXPECT_EQ(f.hints, (Hints{{5, 7}, {5, 8}}));
  f.hints.clear();
  f.prefetcher.OnRouted(5, routed, f.oracle);  // the last MoE layer: nothing ahead
  EXPECT_TRUE(f.hints.empty());
}

TEST(Prefetcher, HistoryHintsLastTokensExpertsLookaheadLayersAhead) {
  Fixture f(PrefetchMode::kHistory);
  const int32_t t0[] = {0}, t1[] = {1};
  f.prefetcher.BeginToken(t0);
  EXPECT_TRUE(f.hints.empty()) << "no history yet, and hash hints are router lookahead's";
  const int32_t e1[] = {1, 2}, e2[] = {3}, e4[] = {4, 5}, e5[] = {6};
  f.prefetcher.OnRouted(1, e1, f.oracle);
  f.prefetcher.OnRouted(2, e2, f.oracle);
  f.prefetcher.OnRouted(4, e4, f.oracle);
  f.prefetcher.OnRouted(5, e5, f.oracle);
  EXPECT_TRUE(f.oracle.calls.empty()) << "history mode never asks the router";
  f.hints.clear();
  // Next token: the first two MoE layers get last token's experts at once...
  f.prefetcher.BeginToken(t1);
  EXPECT_EQ(f.hints, (Hints{{1, 1}, {1, 2}, {2, 3}}));
  f.hints.clear();
  // ... and each routed layer hints the layer two MoE layers further on.
  f.prefetcher.OnRouted(1, e1, f.oracle);
  EXPECT_EQ(f.hints, (Hints{{4, 4}, {4, 5}}));
  f.hints.clear();
  f.prefetcher.OnRouted(2, e2, f.oracle);
  EXPECT_EQ(f.hints, (Hints{{5, 6}}));
}

TEST(Prefetcher, HintsAreDeduplicatedWithinATokenAndForgottenAtTheNext) {
  Fixture f(PrefetchMode::kAll);
  f.oracle.script[4] = {5, 5, 6};
  const int32_t token[] = {0}, routed[] = {5};
  f.prefetcher.BeginToken(token);
  f.prefetcher.OnRouted(1, routed, f.oracle);
  f.prefetcher.OnRouted(2, routed, f.oracle);  // layer 4 again: 5 and 6 already hinted
  Hints layer4;
  for (const auto& h : f.hints) {
    if (h.first == 4) layer4.push_back(h);
  }
  EXPECT_EQ(layer4, (Hints{{4, 5}, {4, 6}}));
  f.hints.clear();
  f.prefetcher.BeginToken(token);  // a new token: the same hints are issued again
  f.prefetcher.OnRouted(1, routed, f.oracle);
  EXPECT_NE(std::find(f.hints.begin(), f.hints.end(), std::make_pair(4u, 5u)), f.hints.end());
}

TEST(Prefetcher, PrefillChunksCancelStaleHintsButNeverRoute) {
  Fixture f(PrefetchMode::kAll);
  const int32_t chunk[] = {0, 1, 2};
  f.prefetcher.BeginToken(chunk);
  EXPECT_EQ(f.tokens, 1) << "stale hints are cancelled before a chunk too";
  const int32_t routed[] = {1};
  f.prefetcher.OnRouted(1, routed, f.oracle);
  EXPECT_TRUE(f.hints.empty());
  EXPECT_TRUE(f.oracle.calls.empty());
}

TEST(Prefetcher, OffOrNoSinkHintsNothing) {
  for (const PrefetchMode mode : {PrefetchMode::kOff}) {
    Fixture f(mode);
    const int32_t token[] = {1}, routed[] = {1};
    f.prefetcher.BeginToken(token);
    f.prefetcher.OnRouted(1, routed, f.oracle);
    EXPECT_TRUE(f.hints.empty());
    EXPECT_EQ(f.tokens, 0);
    EXPECT_FALSE(f.prefetcher.router_lookahead());
  }
  Prefetcher none(nullptr, PrefetchMode::kAll, 2, {1, 2});
  EXPECT_FALSE(none.router_lookahead());
  ScriptedOracle oracle;
  const int32_t token[] = {1}, routed[] = {1};
  none.BeginToken(token);
  none.OnRouted(1, routed, oracle);
  EXPECT_TRUE(oracle.calls.empty());
}

TEST(Prefetcher, ModeNamesRoundTripAndABadOneNamesTheFlag) {
  for (const PrefetchMode m :
       {PrefetchMode::kOff, PrefetchMode::kHistory, PrefetchMode::kRouter, PrefetchMode::kAll}) {
    auto parsed = ParsePrefetchMode(PrefetchModeName(m));
    ASSERT_TRUE(parsed.ok());
    EXPECT_EQ(*parsed, m);
  }
  auto bad = ParsePrefetchMode("sometimes");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("--prefetch 'sometimes'"), std::string::npos);
}

}  // namespace
}  // namespace strata::prefetch

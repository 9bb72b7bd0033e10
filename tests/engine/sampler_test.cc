#include "engine/sampler.h"

#include <gtest/gtest.h>

#include <cmath>
#include <map>

namespace strata::engine {
namespace {

std::vector<float> Logits() { return {1.0f, 3.0f, 2.0f, 0.5f, 2.9f, -1.0f}; }

TEST(Sampler, GreedyIsArgmax) {
  Sampler s({.temp = 0.0f});
  EXPECT_EQ(s.Sample(Logits()), 1);
}

TEST(Sampler, SameSeedSameDraws) {
  SamplerOptions o{.temp = 1.0f, .top_k = 0, .top_p = 1.0f, .min_p = 0.0f, .seed = 7};
  Sampler a(o), b(o);
  for (int i = 0; i < 100; ++i) ASSERT_EQ(a.Sample(Logits()), b.Sample(Logits()));
}

TEST(Sampler, TopKOneIsGreedyAndFiltersNarrow) {
  Sampler k1({.temp = 1.0f, .top_k = 1, .seed = 1});
  for (int i = 0; i < 20; ++i) EXPECT_EQ(k1.Sample(Logits()), 1);
  // top-k 2: only ids 1 and 4 can come out.
  Sampler k2({.temp = 1.0f, .top_k = 2, .top_p = 1.0f, .min_p = 0.0f, .seed = 2});
  for (int i = 0; i < 200; ++i) {
    const int32_t t = k2.Sample(Logits());
    EXPECT_TRUE(t == 1 || t == 4) << t;
  }
  // min-p 0.5: tokens below half the top probability go (exp(2 - 3) = 0.37 < 0.5).
  Sampler mp({.temp = 1.0f, .top_k = 0, .top_p = 1.0f, .min_p = 0.5f, .seed = 3});
  for (int i = 0; i < 200; ++i) {
    const int32_t t = mp.Sample(Logits());
    EXPECT_TRUE(t == 1 || t == 4) << t;
  }
}

TEST(Sampler, FrequenciesFollowTheSoftmax) {
  Sampler s({.temp = 1.0f, .top_k = 0, .top_p = 1.0f, .min_p = 0.0f, .seed = 11});
  const std::vector<float> logits = {0.0f, std::log(3.0f)};  // p = 0.25, 0.75
  int ones = 0;
  for (int i = 0; i < 20000; ++i) ones += s.Sample(logits);
  EXPECT_NEAR(ones / 20000.0, 0.75, 0.02);
}

TEST(Sampler, RepeatPenaltyDemotesRecentTokens) {
  Sampler s({.temp = 0.0f, .repeat_penalty = 2.0f, .repeat_last_n = 4});
  s.Accept(1);  // logit 3 -> 1.5, below id 4 (2.9)
  EXPECT_EQ(s.Sample(Logits()), 4);
  for (int i = 0; i < 4; ++i) s.Accept(5);  // id 1 falls out of the window
  EXPECT_EQ(s.Sample(Logits()), 1);
}

}  // namespace
}  // namespace strata::engine

// The residency plan on a real model file: every tensor is pinned or an expert stack;
// the floor is exactly pinned bytes plus top-k slots per MoE layer, and a budget one
// byte below it is refused with a message that gives that number; --pin moves whole
// layers of experts into the pinned set; the expert cache flag is checked.
#include "tiers/residency_plan.h"

#include <gtest/gtest.h>

#include "storage/async_reader.h"
#include "storage/gguf.h"
#include "tests/tiers/test_model.h"

namespace strata::tiers {
namespace {

storage::GgufFile Header() {
  auto f = storage::ReadGgufFile(testing::TierTestModel("tiny"));
  EXPECT_TRUE(f.ok());
  return std::move(f).value();
}

TEST(ResidencyPlan, UnlimitedBudgetKeepsEverythingResident) {
  const storage::GgufFile f = Header();
  auto plan = PlanResidency(f, testing::Inputs(0, 0, 4, {}));
  ASSERT_TRUE(plan.ok()) << plan.status().ToString();
  EXPECT_TRUE(plan->all_resident);
  EXPECT_EQ(plan->moe_layers.size(), 2u);
  EXPECT_EQ(plan->total_bundles, 128u);
  EXPECT_EQ(plan->pinned_bundles, 128u);
  uint64_t bytes = plan->pinned_dense_bytes + plan->routed_expert_bytes;
  EXPECT_EQ(bytes, [&] {
    uint64_t sum = 0;
    for (const auto& t : f.tensors()) sum += t.bytes;
    return sum;
  }());
  for (const MoeLayer& L : plan->moe_layers) {
    for (const BundleSegment& s : L.segments) {
      EXPECT_EQ(s.slot_offset % storage::kDirectIoAlignment, 0u);
      EXPECT_GE(s.slot_bytes, AlignForDirectRead(s.stack->ExpertRange(L.n_expert - 1)).bytes);
    }
  }
}

TEST(ResidencyPlan, TheFloorIsExactAndRefusedWithTheMinimum) {
  const storage::GgufFile f = Header();
  auto probe = PlanResidency(f, testing::Inputs(0, 0, 4, {}));
  ASSERT_TRUE(probe.ok());
  const uint64_t floor = probe->pinned_dense_bytes + 4 * 2 * probe->slot_bytes;
  auto at = PlanResidency(f, testing::Inputs(floor, 0, 4, {}));
  ASSERT_TRUE(at.ok()) << at.status().ToString();
  EXPECT_FALSE(at->all_resident);
  EXPECT_EQ(at->min_budget, floor);
  EXPECT_EQ(at->cache_slots, 8u);
  EXPECT_LE(at->resident_bytes(), floor);
  auto below = PlanResidency(f, testing::Inputs(floor - 1, 0, 4, {}));
  ASSERT_FALSE(below.ok());
  EXPECT_EQ(below.status().code(), StatusCode::kResourceExhausted);
  EXPECT_NE(below.status().message().find(std::to_string(floor) + " bytes"), std::string::npos)
      << below.status().message();
}

TEST(ResidencyPlan, PinPatternsPinWholeLayersOfExperts) {
  const storage::GgufFile f = Header();
  auto probe = PlanResidency(f, testing::Inputs(0, 0, 4, {}));
  ASSERT_TRUE(probe.ok());
  const uint64_t budget = probe->pinned_dense_bytes + 100 * probe->slot_bytes;
  auto plan = PlanResidency(f, testing::Inputs(budget, 0, 4, {"blk.2.ffn_*_exps.*"}));
  ASSERT_TRUE(plan.ok()) << plan.status().ToString();
  EXPECT_FALSE(plan->moe_layer(1)->pinned);
  EXPECT_TRUE(plan->moe_layer(2)->pinned);
  EXPECT_EQ(plan->pinned_bundles, 64u);
  EXPECT_EQ(plan->moe_layer(0), nullptr) << "layer 0 is dense";
  // The pinned layer no longer counts toward the floor's cached working set.
  EXPECT_EQ(plan->min_budget,
            plan->pinned_dense_bytes + 64 * plan->slot_bytes + 4 * plan->slot_bytes);
  EXPECT_EQ(plan->cache_slots, 36u);
}

TEST(ResidencyPlan, ExpertCacheMustHoldOneTokenAndFitTheBudget) {
  const storage::GgufFile f = Header();
  auto too_small = PlanResidency(f, testing::Inputs(64 << 20, 4096, 4, {}));
  ASSERT_FALSE(too_small.ok());
  EXPECT_NE(too_small.status().message().find("--expert-cache"), std::string::npos);
  auto too_big = PlanResidency(f, testing::Inputs(8 << 20, 7 << 20, 4, {}));
  ASSERT_FALSE(too_big.ok());
  EXPECT_NE(too_big.status().message().find("does not fit"), std::string::npos)
      << too_big.status().message();
}

}  // namespace
}  // namespace strata::tiers

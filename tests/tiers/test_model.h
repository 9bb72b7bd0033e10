// Test models for the tier tests: make-model presets with 64 routed experts per layer,
// so that budgets leaving 10% of the expert bytes resident are above the floor (one
// token's top-k in every MoE layer). Written once per test process under /var/tmp
// (O_DIRECT needs a real filesystem; /tmp may be tmpfs).
#pragma once

#include <unistd.h>

#include <filesystem>
#include <optional>
#include <string>

#include "gtest/gtest.h"
#include "tiers/residency_plan.h"
#include "tools/make_model.h"

namespace strata::testing {

inline std::string TierTestModel(const std::string& preset, uint32_t experts = 64,
                                 std::optional<storage::GgmlType> type = std::nullopt) {
  const std::string path = "/var/tmp/strata-tiers-" + std::to_string(::getpid()) + "-" + preset +
                           "-x" + std::to_string(experts) +
                           (type ? "-" + std::string(storage::TypeName(*type)) : "") + ".gguf";
  if (std::filesystem::exists(path)) return path;
  tools::MakeModelOptions o;
  o.preset = preset;
  o.output = path;
  o.experts = experts;
  o.type = type;
  o.tokenizer = "none";
  o.progress = false;
  auto r = tools::MakeModel(o);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return path;
}

inline tiers::PlanInputs Inputs(uint64_t budget, uint64_t expert_cache, uint32_t top_k,
                                std::vector<std::string> pins) {
  tiers::PlanInputs in;
  in.ram_budget = budget;
  in.expert_cache_bytes = expert_cache;
  in.experts_per_token = top_k;
  in.pin_patterns = std::move(pins);
  return in;
}

// Removes this process's test models when the test binary exits.
class TierTestModelCleanup : public ::testing::Environment {
 public:
  void TearDown() override {
    const std::string prefix = "strata-tiers-" + std::to_string(::getpid()) + "-";
    for (const auto& e : std::filesystem::directory_iterator("/var/tmp")) {
      if (e.path().filename().string().starts_with(prefix)) std::filesystem::remove(e.path());
    }
  }
};

}  // namespace strata::testing

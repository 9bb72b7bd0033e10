#include "engine/budget_choice.h"

#include "engine/deepseek_model.h"
#include "engine/tiered_model.h"
#include "util/size_parse.h"

namespace strata::engine {
namespace {

tiers::PlanInputs InputsFor(const Deepseek2Config& config, const TierOptions& o,
                            const BudgetChoice& choice, uint64_t budget) {
  tiers::PlanInputs in{budget, o.expert_cache, config.n_expert_used, o.pins, o.engram_cache};
  in.session_bytes = choice.session.total();
  in.derived_bytes = choice.derived_bytes;
  if (o.mmap) in.ram_budget = 0;  // the page cache decides; a cgroup enforces a limit
  return in;
}

}  // namespace

Result<BudgetChoice> ChooseBudget(const storage::GgufFile& header, const Deepseek2Config& config,
                                  const TierOptions& o, const AvailableMemory& available) {
  BudgetChoice c;
  c.shape = o.session;
  if (o.session) c.session = EstimateSessionMemory(config, *o.session);
  c.derived_bytes = DeepseekModel::DerivedBytes(header, config);
  if (o.mmap || o.ram_budget_unlimited) return c;
  if (o.ram_budget) {
    c.budget = o.ram_budget;
    return c;
  }
  const uint64_t avail = available.bytes();
  const auto share = static_cast<uint64_t>(static_cast<double>(avail) * kAutoBudgetShare);
  if (o.ram_budget_auto) {
    if (avail == 0) {
      return Status::Unsupported(
          "--ram-budget auto: cannot read MemAvailable from /proc/meminfo; give a size such as 8G");
    }
    c.budget = share;
    c.note = "--ram-budget auto: " + std::to_string(static_cast<int>(kAutoBudgetShare * 100)) +
             "% of " + available.Describe() + " = " + FormatBytes(share);
    return c;
  }
  // No flag: everything in RAM if it fits, as llama.cpp would load it.
  STRATA_ASSIGN_OR_RETURN(const tiers::ResidencyPlan all,
                          tiers::PlanResidency(header, InputsFor(config, o, c, 0)));
  if (avail == 0 || all.resident_bytes() <= share) return c;
  c.budget = share;
  c.note = "the model needs " + FormatBytes(all.resident_bytes()) + " in RAM, more than " +
           std::to_string(static_cast<int>(kAutoBudgetShare * 100)) + "% of " +
           available.Describe() + ": running tiered at --ram-budget " + FormatBytes(share) +
           " (auto); --ram-budget SIZE or unlimited to choose";
  return c;
}

Result<tiers::ResidencyPlan> PlanForBudget(const storage::GgufFile& file,
                                           const Deepseek2Config& config, const TierOptions& o,
                                           const BudgetChoice& choice, uint64_t budget) {
  auto plan = tiers::PlanResidency(file, InputsFor(config, o, choice, budget));
  if (plan.ok() || !choice.shape || budget == 0 ||
      plan.status().code() != StatusCode::kResourceExhausted) {
    return plan;
  }
  // Would the weights alone fit? Then it is the context that does not: find the
  // largest context whose plan works (plans are cheap: O(tensors) each).
  BudgetChoice weights_only = choice;
  weights_only.session = {};
  if (!tiers::PlanResidency(file, InputsFor(config, o, weights_only, budget)).ok()) return plan;
  auto fits_at = [&](uint32_t n_ctx) {
    BudgetChoice c = choice;
    SessionShape shape = *choice.shape;
    shape.n_ctx = n_ctx;
    c.session = EstimateSessionMemory(config, shape);
    return tiers::PlanResidency(file, InputsFor(config, o, c, budget)).ok();
  };
  uint32_t lo = 0, hi = choice.shape->n_ctx - 1;  // n_ctx itself does not fit
  while (lo < hi) {
    const uint32_t mid = lo + (hi - lo + 1) / 2;
    if (fits_at(mid)) {
      lo = mid;
    } else {
      hi = mid - 1;
    }
  }
  auto floor = tiers::PlanResidency(file, InputsFor(config, o, choice, 0));
  const uint64_t smallest = floor.ok() ? floor->min_budget : 0;
  const std::string need = DescribeSession(*choice.shape, choice.session);
  const std::string raise = smallest ? ", the smallest budget that works is " +
                                           FormatBytes(smallest) + " (" +
                                           std::to_string(smallest) + " bytes)"
                                     : std::string();
  if (lo == 0) {
    return Status::ResourceExhausted("--ram-budget " + FormatBytes(budget) +
                                     " holds the weights but not " + need +
                                     " at any context: lower -b" + raise);
  }
  return Status::ResourceExhausted("-c " + std::to_string(choice.shape->n_ctx) +
                                   " does not fit in --ram-budget " + FormatBytes(budget) + " (" +
                                   need + "): the largest context that fits is -c " +
                                   std::to_string(lo) + raise);
}

}  // namespace strata::engine

// The RAM budget a run gets, and the plan for it. One place decides, for run, chat,
// bench, plan and serve alike:
//   --ram-budget SIZE       that size
//   --ram-budget auto       kAutoBudgetShare of what this process may use (MemAvailable
//                           and any memory cgroup limit, util/available_memory.h)
//   --ram-budget unlimited  every weight in RAM, whatever the machine has
//   (none)                  unlimited when the whole model, its KV cache and scratch fit
//                           in that share; otherwise as auto, with one line saying so,
//                           so a model larger than RAM never gets the process OOM-killed
// The budget covers what the engine allocates beyond the file's tensors: the session's
// KV cache and scratch (SessionShape) and tensors derived at load (legacy attn_kv_b).
// A -c too large for the budget is refused with the largest context that fits.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "engine/deepseek2_config.h"
#include "engine/session_memory.h"
#include "storage/gguf.h"
#include "tiers/residency_plan.h"
#include "util/available_memory.h"
#include "util/status.h"

namespace strata::engine {

struct TierOptions;

// The share of available memory `auto` (and the default, for a model that does not
// fit) takes: the rest is for the tokenizer, the parsed metadata, code, thread stacks,
// and the page cache the loader passes through.
inline constexpr double kAutoBudgetShare = 0.85;

struct BudgetChoice {
  uint64_t budget = 0;  // 0: unlimited
  std::string note;     // for stderr when not empty: what was chosen and why
  SessionMemory session;
  std::optional<SessionShape> shape;
  uint64_t derived_bytes = 0;
};

// `available` is normally ReadAvailableMemory(); tests pass their own.
Result<BudgetChoice> ChooseBudget(const storage::GgufFile& header, const Deepseek2Config& config,
                                  const TierOptions& options, const AvailableMemory& available);

// The residency plan for `budget` with the choice's session and derived bytes; when only
// the session does not fit, the error names -c and the largest context that does.
Result<tiers::ResidencyPlan> PlanForBudget(const storage::GgufFile& file,
                                           const Deepseek2Config& config,
                                           const TierOptions& options, const BudgetChoice& choice,
                                           uint64_t budget);

}  // namespace strata::engine

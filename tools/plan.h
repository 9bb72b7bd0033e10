// `strata plan`: where a model's weights would live for a RAM budget and how fast it
// should decode there. Prints the residency plan (pinned bytes, cache slots, the
// floor), measures the drive under the model (sequential GB/s and random 4 KiB IOPS,
// O_DIRECT) and RAM bandwidth and kernel speed, and predicts decode tok/s from the
// expected misses per token: uniform routing, or the heat profile when there is one.
// Reads only the header and a few seconds of the drive, never loads the weights.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "tools/tier_flags.h"
#include "util/status.h"

namespace strata::tools {

struct PlanOptions {
  std::string model;
  TierFlags tiers;
  std::vector<std::string> budgets;  // extra budgets, one row each
  unsigned threads = 0;
  uint32_t ctx_size = 4096;  // the session the budget must hold, as run would open it
  int64_t batch_size = 512;
  std::string cache_type = "f16";
  bool measure_drive = true;
  bool json = false;
};

Status RunPlan(const PlanOptions& options);

}  // namespace strata::tools

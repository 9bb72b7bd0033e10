// The tier flags shared by run, bench, plan and chat (README "Tiers"): --ram-budget,
// --expert-cache, --engram-cache, --pin, --prefetch, --lookahead, --io, --io-depth, --cache-policy,
// --profile, and their translation into engine options with one-line errors that name
// the flag.
#pragma once

#include <CLI/CLI.hpp>
#include <string>
#include <vector>

#include "engine/tiered_model.h"
#include "prefetch/prefetcher.h"
#include "util/status.h"

namespace strata::tools {

struct TierFlags {
  std::string ram_budget;  // "" = unlimited, "auto", or a size
  std::string expert_cache;
  std::string engram_cache = "64M";
  std::vector<std::string> pins;
  std::string prefetch = "all";
  uint32_t lookahead = 2;
  std::string io = "uring";
  uint32_t io_depth = 32;
  std::string cache_policy = "lru";
  std::string profile;
  bool no_profile = false;
  bool verify_reads = false;
  bool no_verify = false;  // packed files: skip the bundle checksums
  std::string faults;      // --io fault only: "eio=7,short=5,flip=11,delay=3,eio-at=OFFSET"
};

void AddTierFlags(CLI::App& cmd, TierFlags& flags);
Result<engine::TierOptions> ToTierOptions(const TierFlags& flags);
Result<prefetch::PrefetchMode> ToPrefetchMode(const TierFlags& flags);

}  // namespace strata::tools

#include "tools/tier_flags.h"

#include <charconv>

#include "util/size_parse.h"
#include "util/utf8.h"

namespace strata::tools {
namespace {

Result<storage::FaultPlan> ParseFaults(const std::string& spec) {
  storage::FaultPlan plan;
  size_t pos = 0;
  while (pos < spec.size()) {
    const size_t end = std::min(spec.find(',', pos), spec.size());
    const std::string item = spec.substr(pos, end - pos);
    pos = end + 1;
    const size_t eq = item.find('=');
    uint64_t v = 0;
    // (UBSan under fuzz_cli_args: the pointer past '=' was formed before the check.)
    const bool parsed =
        eq != std::string::npos &&
        std::from_chars(item.data() + eq + 1, item.data() + item.size(), v).ec == std::errc();
    const std::string key = parsed ? item.substr(0, eq) : "";
    if (!parsed || (key != "eio-at" && v > UINT32_MAX)) {
      return Status::InvalidArgument("--faults: '" + PrintableForError(item) +
                                     "' is not key=number (numbers below 2^32, except eio-at)");
    }
    if (key == "eio") {
      plan.eio_every = static_cast<uint32_t>(v);
    } else if (key == "short") {
      plan.short_every = static_cast<uint32_t>(v);
    } else if (key == "flip") {
      plan.flip_every = static_cast<uint32_t>(v);
    } else if (key == "delay") {
      plan.delay_every = static_cast<uint32_t>(v);
    } else if (key == "delay-us") {
      plan.delay_us = static_cast<uint32_t>(v);
    } else if (key == "eio-at") {
      plan.eio_always_at = v;
    } else if (key == "eagain") {
      plan.eagain_every = static_cast<uint32_t>(v);
    } else if (key == "submit-fail") {
      plan.submit_fail_every = static_cast<uint32_t>(v);
    } else {
      return Status::InvalidArgument(
          "--faults: unknown fault '" + PrintableForError(key) +
          "' (eio, short, flip, delay, delay-us, eio-at; with --io uring-fault also eagain, "
          "submit-fail)");
    }
  }
  return plan;
}

}  // namespace

void AddTierFlags(CLI::App& cmd, TierFlags& f) {
  cmd.add_option("--ram-budget", f.ram_budget,
                 "RAM for everything strata holds (weights, expert and Engram caches, KV "
                 "cache, scratch): a size (8G), 'auto' (85% of what this process may use: "
                 "MemAvailable and any memory cgroup limit) or 'unlimited'; default: "
                 "unlimited if the model fits in that, else auto")
      ->group("Tiers");
  cmd.add_option("--expert-cache", f.expert_cache,
                 "Expert cache size within the budget (default: what the pinned set leaves)")
      ->group("Tiers");
  cmd.add_option("--engram-cache", f.engram_cache,
                 "Engram row cache within the budget, for tables left on disk (segmented LRU)")
      ->capture_default_str()
      ->group("Tiers");
  cmd.add_option("--pin", f.pins,
                 "Keep tensors matching this glob in RAM, e.g. 'blk.1[0-9].ffn_*_exps*' "
                 "(repeatable)")
      ->group("Tiers");
  cmd.add_option("--prefetch", f.prefetch, "Expert prefetch: off, history, router or all")
      ->capture_default_str()
      ->group("Tiers");
  cmd.add_option("--lookahead", f.lookahead, "MoE layers the prefetcher looks ahead")
      ->capture_default_str()
      ->group("Tiers");
  cmd.add_option("--io", f.io,
                 "Expert reads: uring (io_uring, O_DIRECT), pread (thread pool), or mmap "
                 "(page-cache baseline)")
      ->capture_default_str()
      ->group("Tiers");
  cmd.add_option("--io-depth", f.io_depth, "Reads in flight")
      ->capture_default_str()
      ->group("Tiers");
  cmd.add_option("--cache-policy", f.cache_policy, "Expert cache eviction: lru or lfu")
      ->capture_default_str()
      ->group("Tiers");
  cmd.add_option("--profile", f.profile,
                 "Heat profile file (default: MODEL.strata-heat beside the model)")
      ->group("Tiers");
  cmd.add_flag("--no-profile", f.no_profile, "Neither read nor update a heat profile")
      ->group("Tiers");
  cmd.add_flag("--no-verify", f.no_verify,
               "Packed files: skip the per-bundle XXH3 check (bench measures its cost)");
  cmd.add_flag("--verify-reads", f.verify_reads,
               "Checksum every expert bundle on first read and verify every re-read")
      ->group("Tiers");
  cmd.add_option("--faults", f.faults,
                 "With --io fault (testing): inject faults, e.g. eio=7,short=5,flip=11")
      ->group("Testing");
}

Result<engine::TierOptions> ToTierOptions(const TierFlags& f) {
  engine::TierOptions o;
  if (f.ram_budget == "auto") {
    o.ram_budget_auto = true;
  } else if (f.ram_budget == "unlimited") {
    o.ram_budget_unlimited = true;
  } else if (!f.ram_budget.empty()) {
    auto size = ParseSize(f.ram_budget);
    if (!size.ok()) return size.status().WithContext("--ram-budget");
    if (*size == 0) return Status::InvalidArgument("--ram-budget must be more than 0");
    o.ram_budget = *size;
  }
  if (!f.expert_cache.empty()) {
    auto size = ParseSize(f.expert_cache);
    if (!size.ok()) return size.status().WithContext("--expert-cache");
    o.expert_cache = *size;
    if (o.ram_budget == 0 && !o.ram_budget_auto) {
      return Status::InvalidArgument("--expert-cache needs --ram-budget (a size or auto)");
    }
  }
  {
    auto size = ParseSize(f.engram_cache);
    if (!size.ok()) return size.status().WithContext("--engram-cache");
    if (*size < 4096) return Status::InvalidArgument("--engram-cache must be at least 4K");
    o.engram_cache = *size;
  }
  o.pins = f.pins;
  if (f.io == "mmap") {
    o.mmap = true;
  } else if (f.io == "uring") {
    o.reader.backend = storage::IoBackend::kUring;
  } else if (f.io == "pread") {
    o.reader.backend = storage::IoBackend::kPread;
  } else if (f.io == "fault") {
    o.reader.backend = storage::IoBackend::kFault;
  } else if (f.io == "uring-fault") {
    o.reader.backend = storage::IoBackend::kUringFault;
  } else {
    return Status::InvalidArgument("--io '" + PrintableForError(f.io) +
                                   "' is not one of: uring, pread, mmap");
  }
  if (!f.faults.empty()) {
    if (o.reader.backend != storage::IoBackend::kFault &&
        o.reader.backend != storage::IoBackend::kUringFault) {
      return Status::InvalidArgument("--faults needs --io fault or --io uring-fault");
    }
    STRATA_ASSIGN_OR_RETURN(o.reader.faults, ParseFaults(f.faults));
    const storage::FaultPlan& p = o.reader.faults;
    if (o.reader.backend == storage::IoBackend::kFault && (p.eagain_every || p.submit_fail_every)) {
      return Status::InvalidArgument("--faults: eagain and submit-fail need --io uring-fault");
    }
  }
  if (f.io_depth == 0 || f.io_depth > 4096) {
    return Status::InvalidArgument("--io-depth must be between 1 and 4096, not " +
                                   std::to_string(f.io_depth));
  }
  o.reader.depth = f.io_depth;
  STRATA_ASSIGN_OR_RETURN(o.policy, tiers::ParseCachePolicy(f.cache_policy));
  o.profile = f.profile;
  o.use_profile = !f.no_profile;
  o.verify = f.verify_reads;
  o.pack_checksums = !f.no_verify;
  return o;
}

Result<prefetch::PrefetchMode> ToPrefetchMode(const TierFlags& f) {
  if (f.lookahead > 64) {
    return Status::InvalidArgument("--lookahead must be at most 64, not " +
                                   std::to_string(f.lookahead));
  }
  return prefetch::ParsePrefetchMode(f.prefetch);
}

}  // namespace strata::tools

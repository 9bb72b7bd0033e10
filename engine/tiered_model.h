// A deepseek2 model opened with its tiers: the residency plan for the RAM budget, the
// pinned tensors read into RAM, the expert cache (slots, all-in-RAM or mmap), and the
// heat profile that warms the cache and learns from each run. This is what `run`,
// `bench`, `plan` and `chat` open. Thread-compatible; the model it holds is shareable.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "engine/budget_choice.h"
#include "engine/deepseek_model.h"
#include "engine/session_memory.h"
#include "storage/async_reader.h"
#include "tiers/engram_row_cache.h"
#include "tiers/expert_cache.h"
#include "tiers/heat_profile.h"
#include "tiers/ram_budget.h"
#include "tiers/residency_plan.h"
#include "util/status.h"

namespace strata::engine {

struct TierOptions {
  uint64_t ram_budget = 0;            // bytes; 0: see budget_choice.h
  bool ram_budget_auto = false;       // kAutoBudgetShare of the available memory
  bool ram_budget_unlimited = false;  // every weight in RAM, even beyond available memory
  // The session the budget must also hold (KV cache and scratch); unset: none counted.
  std::optional<SessionShape> session;
  uint64_t expert_cache = 0;     // 0: what the budget leaves
  std::vector<std::string> pins;
  bool mmap = false;  // --io mmap: the page-cache baseline
  storage::ReaderOptions reader;
  tiers::CachePolicy policy = tiers::CachePolicy::kLru;
  bool verify = false;
  bool pack_checksums = true;  // packed files: check every bundle's XXH3
  std::string profile;         // heat profile path; "" = beside the model
  bool use_profile = true;     // warm from it and add this run's counts at the end
  bool record_trace = false;
  bool progress = false;         // progress bars (stderr, terminals only) while loading
  storage::PreadFn pinned_read;  // tests: how pinned weights are read (null: ::pread)
  uint64_t engram_cache = 64ull << 20;  // the Engram row cache, when tables stay on disk
};

class TieredModel {
 public:
  // `available`: what ChooseBudget starts from; unset: ReadAvailableMemory().
  static Result<std::unique_ptr<TieredModel>> Open(
      const std::string& path, const TierOptions& options,
      const std::optional<AvailableMemory>& available = std::nullopt);
  ~TieredModel();

  DeepseekModel& model() { return *model_; }
  const ModelFile& file() const { return model_->file(); }
  const tiers::ResidencyPlan& plan() const { return cache_->plan(); }
  tiers::ExpertCache& cache() { return *cache_; }
  // Null unless Engram tables stay on disk.
  tiers::EngramRowCache* engram_rows() { return engram_rows_.get(); }
  tiers::EngramStats engram_stats() const {
    return engram_rows_ ? engram_rows_->stats() : tiers::EngramStats{};
  }
  const tiers::RamBudget& budget() const { return *budget_; }
  uint64_t effective_budget() const { return budget_->limit(); }
  double load_seconds() const { return load_seconds_; }

  // Adds this run's per-bundle use counts to the heat profile (once; later calls add
  // only what came since). Failures are logged, not fatal: the profile is a hint.
  void SaveHeat();
  // "tiers: tiered, budget 4.00 GiB, io uring: expert hit 61.2%, 154.0 MiB read/token,
  // stall 41.0 ms/token" for `s` (a CacheStats::Since delta) over `tokens` tokens.
  // Models with streamed Engram tables add "; engram cache SIZE: hit H%, R rows
  // read/token, stall S ms/token" from `e` (stats over the same tokens as `s`).
  std::string TierReport(const tiers::CacheStats& s, uint64_t tokens,
                         const tiers::EngramStats& e) const;
  // "tiered, budget 4.00 GiB, io uring": the mode, budget and backend.
  std::string TierSummary() const;

 private:
  TieredModel() = default;
  std::unique_ptr<tiers::RamBudget> budget_;
  tiers::Reservation pinned_;   // pinned tensors and what the model derives from them
  tiers::Reservation session_;  // TierOptions::session's KV cache and scratch
  std::unique_ptr<tiers::ExpertCache> cache_;
  std::unique_ptr<tiers::EngramRowCache> engram_rows_;
  std::unique_ptr<DeepseekModel> model_;
  std::unique_ptr<tiers::HeatProfile> profile_;
  std::vector<uint64_t> saved_counts_;
  double load_seconds_ = 0;
};

}  // namespace strata::engine

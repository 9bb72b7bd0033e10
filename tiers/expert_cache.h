// The expert cache: routed-expert bundles (gate + up + down of one expert of one layer)
// in fixed 4 KiB-aligned RAM slots, filled from disk by an AsyncReader.
//
// The engine, per MoE layer: Demand(layer, experts) once, then Next() once per expert.
// Next() hands back pins in arrival order: bundles already resident first, then misses
// as their reads land, so ready experts compute while others are still being read.
// A pin keeps its slot from eviction until destroyed. Prefetch() is a hint: it reads a
// bundle at low priority if a slot can be had without evicting anything the current
// token touched; CancelPrefetches() drops hints whose reads have not started.
// Eviction takes the unpinned ready slot used least recently (LRU) or least often (LFU,
// with counts that age); a prefetched bundle not yet used goes last.
//
// Failed reads and checksum mismatches are retried; after max_attempts the demand
// fails with one line naming the file, layer, expert and offset. With verify on, a
// bundle's first read is confirmed by another read with the same xxh3 (a transient
// flip cannot pass both), and every later read must match that hash. GGUF carries no
// checksums, so corruption that is stable on disk needs a packed file. The bytes a pin
// shows are exactly the file's bytes, so logits do not depend on the budget.
//
// Packed files (strata pack): one aligned read per bundle into the slot (or, when the
// bundle is compressed, into the slot's staging area), then the index's XXH3 is checked
// and the bundle decoded into place on the completion thread; a mismatch is retried
// like a failed read and finally reported with the layer, expert and file offset.
//
// Modes: slots (the default), all resident (every bundle read at start into its own
// slot), and mmap (the baseline: views into a read-only mapping, the page cache does
// the caching). Thread-safe; reader completions arrive on reader threads.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <vector>

#include "storage/async_reader.h"
#include "tiers/ram_budget.h"
#include "tiers/residency_plan.h"
#include "util/status.h"

namespace strata {
class ProgressBar;
}

namespace strata::tiers {

enum class CachePolicy { kLru, kLfu };
std::string_view CachePolicyName(CachePolicy p);
Result<CachePolicy> ParseCachePolicy(std::string_view name);

struct ExpertCacheOptions {
  storage::ReaderOptions reader;
  // The model's files in one address space (GgufFile::shards()); empty: just `path`.
  std::vector<storage::FileExtent> files;
  bool mmap = false;  // baseline: no slots, no reads of our own
  CachePolicy policy = CachePolicy::kLru;
  bool verify = false;         // unpacked files: confirm each bundle by a second read
  bool pack_checksums = true;  // packed files: check each bundle's XXH3 from the index
  uint32_t max_attempts = 5;   // whole-bundle reads (I/O errors are retried per read below)
  bool record_trace = false;   // keep the demanded bundle sequence (for Belady replay)
};

// Data of one expert's rows in each stack: gate and up have n_ff_exp rows, down n_embd.
struct ExpertView {
  const uint8_t* gate = nullptr;
  const uint8_t* up = nullptr;
  const uint8_t* down = nullptr;
};

class ExpertCache;

class ExpertPin {
 public:
  ExpertPin() = default;
  ExpertPin(ExpertPin&& o) noexcept { *this = std::move(o); }
  ExpertPin& operator=(ExpertPin&& o) noexcept;
  ExpertPin(const ExpertPin&) = delete;
  ExpertPin& operator=(const ExpertPin&) = delete;
  ~ExpertPin() { Release(); }

  uint32_t expert() const { return expert_; }
  const ExpertView& view() const { return view_; }
  void Release();

 private:
  friend class ExpertCache;
  ExpertCache* cache_ = nullptr;
  int32_t slot_ = -1;  // -1: nothing to release (mmap, permanent)
  uint32_t expert_ = 0;
  ExpertView view_;
};

struct CacheStats {
  uint64_t demands = 0;        // expert uses asked for (per layer, per token or chunk)
  uint64_t hits = 0;           // resident when asked for
  uint64_t inflight_hits = 0;  // a read was already in flight when asked for
  uint64_t misses = 0;         // had to start a read
  uint64_t prefetch_issued = 0;
  uint64_t prefetch_used = 0;       // prefetched, then demanded before eviction
  uint64_t prefetch_cancelled = 0;  // dropped before their reads started
  uint64_t evictions = 0;
  uint64_t retries = 0;
  uint64_t checksum_failures = 0;
  uint64_t bytes_read = 0;  // bytes delivered into slots, aligned covers included
  uint64_t stall_ns = 0;    // time Next() waited for a read
  uint64_t preload_ns = 0;  // time Preload() took

  // What happened between two snapshots (`*this` the later one).
  CacheStats Since(const CacheStats& earlier) const;

  // The invariants between the counters; "" when they hold, else what is off.
  std::string Inconsistency() const;

  double hit_rate() const { return demands ? double(hits) / double(demands) : 0; }
  double prefetch_precision() const {
    return prefetch_issued ? double(prefetch_used) / double(prefetch_issued) : 0;
  }
  double prefetch_recall() const {
    return demands ? double(hits + inflight_hits) / double(demands) : 0;
  }
};

class ExpertCache {
 public:
  // Reserves the slots from `budget` and opens the reader. Errors name the file.
  static Result<std::unique_ptr<ExpertCache>> Create(const std::string& path,
                                                     const ResidencyPlan& plan, RamBudget& budget,
                                                     const ExpertCacheOptions& options);
  ~ExpertCache();
  ExpertCache(const ExpertCache&) = delete;
  ExpertCache& operator=(const ExpertCache&) = delete;

  // Reads the always-resident bundles, then warms free cache slots with `warm` (bundle
  // keys, hottest first) as far as they go. Blocks until done.
  struct Key {
    uint32_t layer;
    uint32_t expert;
  };
  Status Preload(std::span<const Key> warm, ProgressBar* progress = nullptr);

  // Asks for the bundles of `experts` (distinct). Those already cached are pinned
  // before any miss may evict, so a miss never pushes out what the same call wants.
  void Demand(uint32_t layer, std::span<const int32_t> experts);
  // LFU counts halve after this many demands per cache slot, so old heat fades.
  static constexpr uint64_t kLfuAgingSlots = 8;
  // REQUIRES: fewer Next() calls than experts demanded so far.
  Result<ExpertPin> Next();

  bool Prefetch(uint32_t layer, uint32_t expert);
  void CancelPrefetches();
  // Marks the start of a token: prefetches may only evict what earlier tokens used.
  void BeginToken();

  CacheStats stats() const;
  const ResidencyPlan& plan() const { return plan_; }
  const ExpertCacheOptions& options() const { return options_; }
  std::string_view mode() const;
  storage::IoBackend backend() const;
  uint64_t resident_bytes() const;  // slot bytes holding a bundle (RSS of the cache)
  // Demands per bundle since start (heat), indexed like BundleId().
  std::vector<uint64_t> demand_counts() const;
  std::vector<uint32_t> trace() const;
  size_t trace_size() const;
  uint32_t BundleId(uint32_t layer, uint32_t expert) const;
  Key KeyOf(uint32_t bundle) const;
  uint32_t n_bundles() const { return static_cast<uint32_t>(bundle_slot_.size()); }

 private:
  enum class SlotState : uint8_t { kFree, kLoading, kReady };
  struct Slot {
    uint8_t* mem = nullptr;
    uint32_t slot_class = 0;  // ResidencyPlan::slot_classes: which bundles fit it
    int64_t bundle = -1;
    SlotState state = SlotState::kFree;
    bool permanent = false;
    bool demanded = false;       // a Next() caller is owed this bundle
    bool from_prefetch = false;  // loaded on a hint and not yet demanded
    bool cancelled = false;      // some ops were cancelled; free when the rest land
    bool priority_demand = false;
    uint32_t refs = 0;
    uint32_t ops_left = 0;
    uint32_t generation = 0;  // bumped by every read; tags carry it
    uint32_t attempts = 0;
    uint64_t last_use = 0;
    std::vector<uint64_t> seen_hashes;  // verify: hashes of unconfirmed reads so far
    Status op_error;
    ExpertView view;
  };

  ExpertCache(std::string path, const ResidencyPlan& plan, const ExpertCacheOptions& options);
  friend class ExpertPin;
  void Release(int32_t slot);
  void OnOpDone(uint64_t tag, const Status& status);
  // A read's tag: the slot in the low half, the slot's read generation in the high.
  uint64_t TagOf(int32_t s) const {
    return static_cast<uint64_t>(s) | uint64_t{slots_[s].generation} << 32;
  }
  // REQUIRES: mu_ held. A slot of `slot_class`: a free one, else the policy's victim.
  int32_t AcquireSlotLocked(uint32_t slot_class, bool for_prefetch);
  void StartReadLocked(int32_t slot, uint32_t bundle, storage::IoPriority priority);
  void FinishLocked(int32_t slot);
  void FreeSlotLocked(int32_t slot);
  void StartWaitingLocked();
  // REQUIRES: mu_ held. Counts a demand of bundle `b` for LFU, ageing every count.
  void CountForLfuLocked(uint32_t b);

  Status BundleError(uint32_t bundle, const Status& cause) const;

  const std::string path_;
  const ResidencyPlan plan_;
  const ExpertCacheOptions options_;
  Reservation reservation_;
  uint8_t* arena_ = nullptr;
  uint64_t arena_bytes_ = 0;
  const uint8_t* mapping_ = nullptr;  // mmap mode
  uint64_t mapping_bytes_ = 0;
  std::vector<uint32_t> layer_base_;  // first bundle id of each MoE layer (by moe index)

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Slot> slots_;
  std::vector<std::vector<int32_t>> free_slots_;  // per slot class
  std::vector<uint32_t> bundle_class_;              // bundle id -> slot class
  std::vector<int32_t> bundle_slot_;  // -1: not resident
  std::vector<uint64_t> checksum_;    // 0: not yet known
  std::vector<uint64_t> demand_count_;  // all demands of the run (the heat profile's)
  std::vector<uint32_t> lfu_count_;     // LFU's counts, halved as they age
  uint64_t lfu_demands_ = 0;            // demands since the last halving
  std::vector<int32_t> ready_;          // slots owed to Next(), in arrival order
  std::vector<uint32_t> ready_mapped_;  // mmap mode: bundles owed to Next()
  std::vector<uint32_t> waiting_;       // demanded bundles with no slot yet
  std::vector<uint32_t> trace_;
  uint32_t owed_ = 0;  // demanded, not yet handed out by Next()
  uint64_t tick_ = 0;
  uint64_t bytes_base_ = 0;
  bool shutting_down_ =
      false;  // set by the destructor: completions are dropped  // reader bytes spent on Preload()
  uint64_t token_start_tick_ = 0;
  CacheStats stats_;
  std::unique_ptr<storage::AsyncReader> reader_;  // last: destroyed first, before the arena
};

}  // namespace strata::tiers

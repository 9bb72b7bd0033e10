#include "tiers/expert_cache.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>
#include <xxhash.h>

#include <algorithm>
#include <cassert>
#include <chrono>
#include <cstring>

#include "util/counters.h"
#include "util/huge_pages.h"
#include "util/log.h"
#include "util/progress.h"
#include "util/size_parse.h"
#include "util/utf8.h"

namespace strata::tiers {
namespace {

// Reads are cut into pieces this large so one bundle keeps several requests in flight.
constexpr uint64_t kChunkBytes = 512 * 1024;

uint64_t NowNs() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                   std::chrono::steady_clock::now().time_since_epoch())
                                   .count());
}

}  // namespace

std::string_view CachePolicyName(CachePolicy p) { return p == CachePolicy::kLru ? "lru" : "lfu"; }

Result<CachePolicy> ParseCachePolicy(std::string_view name) {
  if (name == "lru") return CachePolicy::kLru;
  if (name == "lfu") return CachePolicy::kLfu;
  return Status::InvalidArgument("--cache-policy '" + PrintableForError(name) +
                                 "' is not one of: lru, lfu");
}

CacheStats CacheStats::Since(const CacheStats& e) const {
  CacheStats d = CounterDelta(*this, e);
  d.preload_ns = preload_ns;  // a duration, not a running total
  return d;
}

std::string CacheStats::Inconsistency() const {
  if (hits + inflight_hits + misses != demands) {
    return "hits + in-flight hits + misses = " + std::to_string(hits + inflight_hits + misses) +
           " but demands = " + std::to_string(demands);
  }
  if (prefetch_used > prefetch_issued) {
    return "prefetches used (" + std::to_string(prefetch_used) + ") exceed those issued (" +
           std::to_string(prefetch_issued) + ")";
  }
  if (prefetch_cancelled > prefetch_issued) {
    return "prefetches cancelled (" + std::to_string(prefetch_cancelled) +
           ") exceed those issued (" + std::to_string(prefetch_issued) + ")";
  }
  return "";
}

ExpertPin& ExpertPin::operator=(ExpertPin&& o) noexcept {
  if (this != &o) {
    Release();
    cache_ = o.cache_;
    slot_ = o.slot_;
    expert_ = o.expert_;
    view_ = o.view_;
    o.cache_ = nullptr;
    o.slot_ = -1;
  }
  return *this;
}

void ExpertPin::Release() {
  if (cache_ && slot_ >= 0) cache_->Release(slot_);
  cache_ = nullptr;
  slot_ = -1;
}

ExpertCache::ExpertCache(std::string path, const ResidencyPlan& plan,
                         const ExpertCacheOptions& options)
    : path_(std::move(path)), plan_(plan), options_(options) {
  uint32_t n = 0;
  for (const MoeLayer& L : plan_.moe_layers) {
    layer_base_.push_back(n);
    n += L.n_expert;
    bundle_class_.insert(bundle_class_.end(), L.n_expert, L.slot_class);
  }
  bundle_slot_.assign(n, -1);
  checksum_.assign(n, 0);
  demand_count_.assign(n, 0);
  lfu_count_.assign(n, 0);
}

ExpertCache::~ExpertCache() {
  {
    // Reads still landing must not start new ones: unique_ptr::reset() nulls reader_
    // before the reader's destructor waits for them.
    std::lock_guard lock(mu_);
    shutting_down_ = true;
  }
  reader_.reset();  // waits for reads in flight: they write into the arena
  if (arena_) ::munmap(arena_, arena_bytes_);
  if (mapping_) ::munmap(const_cast<uint8_t*>(mapping_), mapping_bytes_);
}

Result<std::unique_ptr<ExpertCache>> ExpertCache::Create(const std::string& path,
                                                         const ResidencyPlan& plan,
                                                         RamBudget& budget,
                                                         const ExpertCacheOptions& options) {
  auto cache = std::unique_ptr<ExpertCache>(new ExpertCache(path, plan, options));
  ExpertCache& c = *cache;
  if (options.mmap) {
    for (const MoeLayer& L : plan.moe_layers) {
      if (L.packed) {
        return Status::Unsupported(path +
                                   ": --io mmap reads tensors in place, but this file is "
                                   "packed (strata pack) and its bundles must be decoded; "
                                   "use --io uring or --io pread");
      }
    }
    STRATA_ASSIGN_OR_RETURN(
        const storage::Mapping m,
        storage::MapFiles(options.files.empty() ? std::vector<storage::FileExtent>{{path, 0}} : options.files));
    c.mapping_ = m.data;
    c.mapping_bytes_ = m.bytes;
    return cache;
  }
  const uint64_t n_slots = plan.pinned_bundles + plan.cache_slots;
  c.arena_bytes_ = plan.slot_arena_bytes();
  STRATA_ASSIGN_OR_RETURN(
      c.reservation_,
      budget.Reserve(c.arena_bytes_, "the expert cache (" + std::to_string(n_slots) + " slots)"));
  if (c.arena_bytes_ > 0) {
    // Anonymous memory: pages are committed as reads fill them, so RSS follows use.
    void* p = ::mmap(nullptr, c.arena_bytes_, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) {
      return Status::ResourceExhausted(path + ": cannot map " + FormatBytes(c.arena_bytes_) +
                                       " for the expert cache: " + std::strerror(errno));
    }
    AdviseHugePages(p, c.arena_bytes_);
    c.arena_ = static_cast<uint8_t*>(p);
  }
  // The arena holds each class's slots in turn, largest first.
  c.slots_.resize(n_slots);
  c.free_slots_.resize(plan.slot_classes.size());
  uint64_t i = 0, offset = 0;
  for (uint32_t k = 0; k < plan.slot_classes.size(); ++k) {
    const SlotClass& cls = plan.slot_classes[k];
    for (uint64_t j = 0; j < cls.pinned_bundles + cls.cache_slots; ++j, ++i) {
      c.slots_[i].mem = c.arena_ + offset;
      c.slots_[i].slot_class = k;
      offset += cls.slot_bytes;
    }
  }
  for (uint64_t s = n_slots; s-- > 0;) {
    c.free_slots_[c.slots_[s].slot_class].push_back(static_cast<int32_t>(s));
  }
  STRATA_ASSIGN_OR_RETURN(
      c.reader_, storage::OpenAsyncReader(
                     options.files.empty() ? std::vector<storage::FileExtent>{{path, 0}} : options.files,
                     options.reader,
                     [p = cache.get()](uint64_t tag, const Status& s) { p->OnOpDone(tag, s); }));
  if (c.arena_bytes_ > 0) c.reader_->RegisterBuffer(c.arena_, c.arena_bytes_);
  return cache;
}

uint32_t ExpertCache::BundleId(uint32_t layer, uint32_t expert) const {
  return layer_base_[static_cast<size_t>(plan_.moe_index_of_layer[layer])] + expert;
}

ExpertCache::Key ExpertCache::KeyOf(uint32_t bundle) const {
  const size_t i = static_cast<size_t>(
      std::upper_bound(layer_base_.begin(), layer_base_.end(), bundle) - layer_base_.begin() - 1);
  return {plan_.moe_layers[i].layer, bundle - layer_base_[i]};
}

std::string_view ExpertCache::mode() const {
  if (options_.mmap) return "mmap";
  return plan_.all_resident ? "all-in-RAM" : "tiered";
}

storage::IoBackend ExpertCache::backend() const {
  return reader_ ? reader_->backend() : storage::IoBackend::kPread;
}

Status ExpertCache::Preload(std::span<const Key> warm, ProgressBar* progress) {
  if (options_.mmap) return Status::Ok();
  const uint64_t start = NowNs();
  std::vector<uint32_t> order;
  for (const MoeLayer& L : plan_.moe_layers) {
    if (!L.pinned && !plan_.all_resident) continue;
    for (uint32_t e = 0; e < L.n_expert; ++e) order.push_back(BundleId(L.layer, e));
  }
  const size_t permanent = order.size();
  for (const Key& k : warm) {
    const MoeLayer* L = plan_.moe_layer(k.layer);
    if (!L || L->pinned || k.expert >= L->n_expert) continue;
    if (order.size() - permanent >= plan_.cache_slots) break;
    order.push_back(BundleId(k.layer, k.expert));
  }
  // Reads go out in waves as slots come back, through the same demand path as decode;
  // a permanent bundle simply never gives its slot up.
  constexpr size_t kWave = 64;
  for (size_t i = 0; i < order.size(); i += kWave) {
    const size_t end = std::min(order.size(), i + kWave);
    size_t owed = 0;
    {
      std::lock_guard lock(mu_);
      for (size_t j = i; j < end; ++j) {
        if (bundle_slot_[order[j]] >= 0) continue;
        std::vector<int32_t>& free = free_slots_[bundle_class_[order[j]]];
        if (free.empty()) continue;  // this class is full; others may not be
        const int32_t s = free.back();
        free.pop_back();
            slots_[s].permanent = j < permanent;
        slots_[s].demanded = true;
        slots_[s].refs = 1;
        ++owed_;
        ++owed;
        StartReadLocked(s, order[j], storage::IoPriority::kDemand);
      }
    }
    for (size_t j = 0; j < owed; ++j) {
      Result<ExpertPin> pin = Next();
      if (!pin.ok()) return pin.status();
      if (progress) progress->Advance(plan_.slot_bytes);  // the bar counts largest slots
    }
  }
  std::lock_guard lock(mu_);
  // Preloading is not the workload: start the counters from zero.
  const uint64_t bytes = reader_->stats().bytes;
  bytes_base_ = bytes;
  stats_ = CacheStats{};
  stats_.preload_ns = NowNs() - start;
  Log(LogModule::kTiers)
      .info("{}: preloaded {} expert bundles ({}) in {:.2f} s", path_, order.size(),
            FormatBytes(bytes), static_cast<double>(stats_.preload_ns) * 1e-9);
  return Status::Ok();
}

void ExpertCache::StartReadLocked(int32_t s, uint32_t bundle, storage::IoPriority priority) {
  Slot& slot = slots_[s];
  const Key key = KeyOf(bundle);
  const MoeLayer& L = *plan_.moe_layer(key.layer);
  slot.bundle = bundle;
  slot.state = SlotState::kLoading;
  slot.op_error = Status::Ok();
  slot.priority_demand = priority == storage::IoPriority::kDemand;
  bundle_slot_[bundle] = s;
  ++slot.generation;
  std::vector<storage::ReadOp> ops;
  const uint8_t** views[3] = {&slot.view.gate, &slot.view.up, &slot.view.down};
  if (L.packed) {
    const storage::PackEntry& e = L.packed->entries[key.expert];
    for (int role = 0; role < 3; ++role) *views[role] = slot.mem + L.segments[role].slot_offset;
    uint8_t* dst = e.codec ? slot.mem + L.stage_offset : slot.mem;
    const uint64_t bytes =
        reader_->direct() ? AlignForDirectRead({e.offset, e.stored}).bytes : e.stored;
    for (uint64_t off = 0; off < bytes; off += kChunkBytes) {
      ops.push_back({e.offset + off, static_cast<uint32_t>(std::min(kChunkBytes, bytes - off)),
                     dst + off, TagOf(s), priority});
    }
  }
  for (int role = 0; role < 3 && !L.packed; ++role) {
    const BundleSegment& seg = L.segments[role];
    const storage::ByteRange range = seg.stack->ExpertRange(key.expert);
    const AlignedRead ar =
        reader_->direct() ? AlignForDirectRead(range) : AlignedRead{range.offset, range.bytes, 0};
    uint8_t* dst = slot.mem + seg.slot_offset;
    *views[role] = dst + ar.skip;
    for (uint64_t off = 0; off < ar.bytes; off += kChunkBytes) {
      ops.push_back({ar.offset + off, static_cast<uint32_t>(std::min(kChunkBytes, ar.bytes - off)),
                     dst + off, TagOf(s), priority});
    }
  }
  slot.ops_left = static_cast<uint32_t>(ops.size());
  reader_->Submit(ops);
}

int32_t ExpertCache::AcquireSlotLocked(uint32_t slot_class, bool for_prefetch) {
  std::vector<int32_t>& free = free_slots_[slot_class];
  if (!free.empty()) {
    const int32_t s = free.back();
    free.pop_back();
    return s;
  }
  int32_t victim = -1;
  for (size_t i = 0; i < slots_.size(); ++i) {
    const Slot& s = slots_[i];
    if (s.slot_class != slot_class) continue;
    if (s.state != SlotState::kReady || s.refs != 0 || s.permanent) continue;
    // A hint must not push out what this token already used or fetched.
    if (for_prefetch && s.last_use >= token_start_tick_) continue;
    if (victim < 0) {
      victim = static_cast<int32_t>(i);
      continue;
    }
    const Slot& v = slots_[victim];
    // A prefetched bundle not yet used goes last: it was fetched because it is about
    // to be needed, and under LFU its count (it has no demands yet) would make it the
    // first victim, undoing the prefetch before its use.
    const bool better =
        s.from_prefetch != v.from_prefetch ? v.from_prefetch
        : options_.policy == CachePolicy::kLfu
            ? std::pair(lfu_count_[s.bundle], s.last_use) < std::pair(lfu_count_[v.bundle], v.last_use)
            : s.last_use < v.last_use;
    if (better) victim = static_cast<int32_t>(i);
  }
  if (victim >= 0) {
    Slot& v = slots_[victim];
    bundle_slot_[v.bundle] = -1;
    v.bundle = -1;
    v.state = SlotState::kFree;
    v.from_prefetch = false;
    ++stats_.evictions;
  }
  return victim;
}

void ExpertCache::FreeSlotLocked(int32_t s) {
  Slot& slot = slots_[s];
  if (slot.bundle >= 0) bundle_slot_[slot.bundle] = -1;
  slot.bundle = -1;
  slot.state = SlotState::kFree;
  slot.demanded = slot.from_prefetch = slot.cancelled = false;
  slot.refs = slot.attempts = 0;
  slot.seen_hashes.clear();
  free_slots_[slot.slot_class].push_back(s);
}

void ExpertCache::Demand(uint32_t layer, std::span<const int32_t> experts) {
  std::lock_guard lock(mu_);
  // Hits first: every bundle of this call that is cached gets pinned before any miss
  // may evict, so a miss never pushes out a bundle the same call wants.
  std::vector<uint32_t> misses;
  for (const int32_t e : experts) {
    const uint32_t b = BundleId(layer, static_cast<uint32_t>(e));
    ++stats_.demands;
    ++demand_count_[b];
    CountForLfuLocked(b);
    ++owed_;
    if (options_.mmap) {
      ++stats_.hits;
      ready_mapped_.push_back(b);
      continue;
    }
    const int32_t s = bundle_slot_[b];
    if (options_.record_trace && !(s >= 0 && slots_[s].permanent)) trace_.push_back(b);
    if (s < 0) {
      misses.push_back(b);
      continue;
    }
    Slot& slot = slots_[s];
    if (slot.from_prefetch) {
      ++stats_.prefetch_used;
      slot.from_prefetch = false;
    }
    ++slot.refs;
    slot.last_use = ++tick_;
    if (slot.state == SlotState::kReady) {
      ++stats_.hits;
      ready_.push_back(s);
    } else {
      ++stats_.inflight_hits;
      slot.demanded = true;
      if (!slot.priority_demand) {
        slot.priority_demand = true;
        reader_->Promote(TagOf(s));
      }
    }
  }
  for (const uint32_t b : misses) {
    ++stats_.misses;
    const int32_t fresh = AcquireSlotLocked(bundle_class_[b], false);
    if (fresh < 0) {
      waiting_.push_back(b);
      continue;
    }
    slots_[fresh].demanded = true;
    slots_[fresh].refs = 1;
    StartReadLocked(fresh, b, storage::IoPriority::kDemand);
  }
  if (!ready_.empty() || !ready_mapped_.empty()) cv_.notify_all();
}

void ExpertCache::CountForLfuLocked(uint32_t b) {
  ++lfu_count_[b];
  // Counts age: every kLfuAgingSlots demands per cache slot all of them halve, so a
  // bundle hot long ago does not outweigh one hot now.
  const uint64_t period = std::max<uint64_t>(plan_.cache_slots, 1) * kLfuAgingSlots;
  if (++lfu_demands_ < period) return;
  lfu_demands_ = 0;
  for (uint32_t& c : lfu_count_) c /= 2;
}

Result<ExpertPin> ExpertCache::Next() {
  std::unique_lock lock(mu_);
  assert(owed_ > 0 && "ExpertCache::Next() without a pending demand");
  ExpertPin pin;
  if (options_.mmap) {
    const uint32_t b = ready_mapped_.front();
    ready_mapped_.erase(ready_mapped_.begin());
    --owed_;
    const Key k = KeyOf(b);
    const MoeLayer& L = *plan_.moe_layer(k.layer);
    const uint8_t** views[3] = {&pin.view_.gate, &pin.view_.up, &pin.view_.down};
    for (int role = 0; role < 3; ++role) {
      *views[role] = mapping_ + L.segments[role].stack->ExpertRange(k.expert).offset;
    }
    pin.expert_ = k.expert;
    return pin;
  }
  if (ready_.empty()) {
    const uint64_t start = NowNs();
    cv_.wait(lock, [&] { return !ready_.empty(); });
    stats_.stall_ns += NowNs() - start;
  }
  const int32_t s = ready_.front();
  ready_.erase(ready_.begin());
  --owed_;
  Slot& slot = slots_[s];
  if (!slot.op_error.ok()) {
    // The demand failed for good: hand the error over and give the slot back.
    Status err = BundleError(static_cast<uint32_t>(slot.bundle), slot.op_error);
    if (--slot.refs == 0) FreeSlotLocked(s);
    StartWaitingLocked();
    return err;
  }
  pin.cache_ = this;
  pin.slot_ = s;
  pin.expert_ = KeyOf(static_cast<uint32_t>(slot.bundle)).expert;
  pin.view_ = slot.view;
  return pin;
}

Status ExpertCache::BundleError(uint32_t bundle, const Status& cause) const {
  const Key k = KeyOf(bundle);
  const MoeLayer& L = *plan_.moe_layer(k.layer);
  const storage::ByteRange r = L.packed ? storage::ByteRange{L.packed->entries[k.expert].offset, 0}
                                        : L.segments[0].stack->ExpertRange(k.expert);
  return cause.WithContext(path_ + ": layer " + std::to_string(k.layer) + " expert " +
                           std::to_string(k.expert) + " (bundle at offset " +
                           std::to_string(r.offset) + ", gave up after " +
                           std::to_string(options_.max_attempts) + " attempts)");
}

void ExpertCache::Release(int32_t s) {
  std::lock_guard lock(mu_);
  Slot& slot = slots_[s];
  slot.last_use = ++tick_;
  if (--slot.refs == 0) slot.demanded = false;
  StartWaitingLocked();
}

void ExpertCache::StartWaitingLocked() {
  // In order, each bundle into a slot of its own class; one whose class is full waits on
  // without holding up the others.
  for (size_t i = 0; i < waiting_.size();) {
    const uint32_t b = waiting_[i];
    const int32_t s = AcquireSlotLocked(bundle_class_[b], false);
    if (s < 0) {
      ++i;
      continue;
    }
    waiting_.erase(waiting_.begin() + static_cast<std::ptrdiff_t>(i));
    slots_[s].demanded = true;
    slots_[s].refs = 1;
    StartReadLocked(s, b, storage::IoPriority::kDemand);
  }
}

void ExpertCache::OnOpDone(uint64_t tag, const Status& status) {
  std::unique_lock lock(mu_);
  if (shutting_down_) return;
  const auto s = static_cast<int32_t>(tag & 0xFFFFFFFF);
  Slot& slot = slots_[s];
  // A completion from a read this slot has since given up (its other pieces were
  // cancelled and the slot reused) carries an old generation: it is not ours.
  if (tag != TagOf(s)) return;
  if (!status.ok() && slot.op_error.ok()) slot.op_error = status;
  if (--slot.ops_left > 0) return;
  if (slot.cancelled) {
    slot.cancelled = false;
    if (slot.demanded) {
      StartReadLocked(s, static_cast<uint32_t>(slot.bundle), storage::IoPriority::kDemand);
    } else {
      FreeSlotLocked(s);
      StartWaitingLocked();
    }
    return;
  }
  const auto bundle = static_cast<uint32_t>(slot.bundle);
  const MoeLayer& layer = *plan_.moe_layer(KeyOf(bundle).layer);
  if (slot.op_error.ok() && layer.packed) {
    // Check and decode in place; the slot is ours while it loads, so without the lock.
    const storage::PackEntry& e = layer.packed->entries[KeyOf(bundle).expert];
    uint8_t* mem = slot.mem;
    const uint8_t* stored = e.codec ? mem + layer.stage_offset : mem;
    lock.unlock();
    Status st =
        storage::DecodeBundle(e.codec, {stored, e.stored}, layer.packed->layout,
                              options_.pack_checksums, e.xxh3, {mem, layer.packed->raw_bytes()});
    lock.lock();
    if (shutting_down_) return;
    if (!st.ok()) {
      ++stats_.checksum_failures;
      slot.op_error = std::move(st);
    }
  } else if (slot.op_error.ok() && options_.verify) {
    // The slot is ours while it loads; hash without holding the lock.
    const MoeLayer& L = *plan_.moe_layer(KeyOf(bundle).layer);
    const ExpertView v = slot.view;
    lock.unlock();
    XXH3_state_t* st = XXH3_createState();
    XXH3_64bits_reset(st);
    XXH3_64bits_update(st, v.gate, L.segments[0].stack->expert_bytes());
    XXH3_64bits_update(st, v.up, L.segments[1].stack->expert_bytes());
    XXH3_64bits_update(st, v.down, L.segments[2].stack->expert_bytes());
    const uint64_t h = XXH3_64bits_digest(st) | 1;  // 0 means "not yet known"
    XXH3_freeState(st);
    lock.lock();
    if (shutting_down_) return;
    if (checksum_[bundle] != 0) {
      if (checksum_[bundle] != h) {
        ++stats_.checksum_failures;
        slot.op_error = Status::Corruption(
            "checksum mismatch: the bundle's bytes differ from those first read and confirmed");
      }
    } else if (std::find(slot.seen_hashes.begin(), slot.seen_hashes.end(), h) ==
               slot.seen_hashes.end()) {
      // No earlier read of this bundle gave these bytes: read again. Two reads that
      // agree are accepted, so one transient flip among them cannot get through.
      // Disagreements have their own budget: a failed read (EIO) retried earlier must
      // not use up the reads that confirm the bytes.
      if (!slot.seen_hashes.empty()) {
        ++stats_.checksum_failures;
        if (slot.seen_hashes.size() >= 2 * size_t{options_.max_attempts}) {
          slot.op_error = Status::Corruption("every two reads of the bundle gave different bytes");
        }
      }
      slot.seen_hashes.push_back(h);
      if (slot.op_error.ok()) {
        StartReadLocked(
            s, bundle,
            slot.priority_demand ? storage::IoPriority::kDemand : storage::IoPriority::kPrefetch);
        return;
      }
    } else {
      checksum_[bundle] = h;
      slot.seen_hashes.clear();
    }
  }
  if (!slot.op_error.ok()) {
    Log(LogModule::kTiers)
        .warn("{}: layer {} expert {}: attempt {} of {} failed: {}", path_, KeyOf(bundle).layer,
              KeyOf(bundle).expert, slot.attempts + 1, options_.max_attempts,
              slot.op_error.message());
    if (++slot.attempts < options_.max_attempts) {
      ++stats_.retries;
      StartReadLocked(
          s, bundle, slot.demanded ? storage::IoPriority::kDemand : storage::IoPriority::kPrefetch);
      return;
    }
    if (!slot.demanded) {
      FreeSlotLocked(s);  // a hint that failed: a later demand tries again
      StartWaitingLocked();
      return;
    }
  } else {
    slot.state = SlotState::kReady;
    slot.attempts = 0;
    if (!slot.demanded && slot.last_use == 0) slot.last_use = ++tick_;
  }
  if (slot.demanded) {
    ready_.push_back(s);
    cv_.notify_all();
  } else {
    StartWaitingLocked();  // a finished hint is evictable: a waiting demand may take it
  }
}

bool ExpertCache::Prefetch(uint32_t layer, uint32_t expert) {
  if (options_.mmap) return false;
  std::lock_guard lock(mu_);
  const uint32_t b = BundleId(layer, expert);
  if (bundle_slot_[b] >= 0 || !waiting_.empty()) return false;
  const int32_t s = AcquireSlotLocked(bundle_class_[b], true);
  if (s < 0) return false;
  Slot& slot = slots_[s];
  slot.from_prefetch = true;
  slot.demanded = false;
  slot.refs = 0;
  slot.last_use = ++tick_;
  ++stats_.prefetch_issued;
  StartReadLocked(s, b, storage::IoPriority::kPrefetch);
  return true;
}

void ExpertCache::CancelPrefetches() {
  if (options_.mmap) return;
  std::lock_guard lock(mu_);
  for (size_t i = 0; i < slots_.size(); ++i) {
    Slot& slot = slots_[i];
    if (slot.state != SlotState::kLoading || slot.demanded || slot.cancelled ||
        slot.priority_demand) {
      continue;
    }
    const size_t n = reader_->Cancel(TagOf(static_cast<int32_t>(i)));
    if (n == 0) continue;
    ++stats_.prefetch_cancelled;
    slot.ops_left -= static_cast<uint32_t>(n);
    if (slot.ops_left == 0) {
      FreeSlotLocked(static_cast<int32_t>(i));
    } else {
      slot.cancelled = true;
    }
  }
  StartWaitingLocked();
}

void ExpertCache::BeginToken() {
  std::lock_guard lock(mu_);
  token_start_tick_ = ++tick_;
}

CacheStats ExpertCache::stats() const {
  std::lock_guard lock(mu_);
  CacheStats s = stats_;
  if (reader_) s.bytes_read = reader_->stats().bytes - bytes_base_;
  return s;
}

uint64_t ExpertCache::resident_bytes() const {
  if (options_.mmap) return 0;
  std::lock_guard lock(mu_);
  uint64_t bytes = arena_bytes_;
  for (size_t k = 0; k < free_slots_.size(); ++k) bytes -= free_slots_[k].size() * plan_.slot_classes[k].slot_bytes;
  return bytes;
}

std::vector<uint64_t> ExpertCache::demand_counts() const {
  std::lock_guard lock(mu_);
  return demand_count_;
}

size_t ExpertCache::trace_size() const {
  std::lock_guard lock(mu_);
  return trace_.size();
}

std::vector<uint32_t> ExpertCache::trace() const {
  std::lock_guard lock(mu_);
  return trace_;
}

}  // namespace strata::tiers

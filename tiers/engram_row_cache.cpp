#include "tiers/engram_row_cache.h"

#include <xxhash.h>

#include <algorithm>
#include <chrono>
#include <cstring>

#include "util/counters.h"
#include "util/log.h"
#include "util/size_parse.h"

namespace strata::tiers {
namespace {

constexpr uint8_t kMaxVerifyReads = 6;
constexpr uint8_t kMaxFailedReads = 5;

uint64_t NowNs() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                   std::chrono::steady_clock::now().time_since_epoch())
                                   .count());
}

}  // namespace

EngramStats EngramStats::Since(const EngramStats& b) const { return CounterDelta(*this, b); }

Result<std::unique_ptr<EngramRowCache>> EngramRowCache::Create(const std::string& path,
                                                               std::vector<EngramTableRef> tables,
                                                               RamBudget& budget,
                                                               const EngramCacheOptions& o) {
  auto c = std::unique_ptr<EngramRowCache>(new EngramRowCache());
  c->tables_ = std::move(tables);
  c->options_ = o;
  uint32_t max_row = 0;
  for (const EngramTableRef& t : c->tables_) max_row = std::max(max_row, t.row_bytes);
  if (max_row == 0) return Status::InvalidArgument("engram row cache: no tables");
  c->slot_stride_ = (max_row + 7) / 8 * 8;
  const uint64_t slots = o.capacity_bytes / c->slot_stride_;
  if (slots == 0 || slots > UINT32_MAX - 2) {
    return Status::InvalidArgument("--engram-cache " + FormatBytes(o.capacity_bytes) +
                                   " cannot hold a row of " + std::to_string(max_row) + " bytes");
  }
  c->n_slots_ = static_cast<uint32_t>(slots);
  STRATA_ASSIGN_OR_RETURN(c->reservation_,
                          budget.Reserve(slots * c->slot_stride_, "the Engram row cache"));
  // aligned_alloc wants a size that is a multiple of the alignment.
  const uint64_t arena_bytes = (slots * c->slot_stride_ + 63) / 64 * 64;
  c->arena_.reset(static_cast<uint8_t*>(std::aligned_alloc(64, arena_bytes)));
  if (!c->arena_) return Status::ResourceExhausted("engram row cache: out of memory");
  const uint32_t inflight = std::max<uint32_t>(1, o.max_inflight);
  c->slots_.resize(c->n_slots_ + 2);
  for (uint32_t seg = 0; seg < 2; ++seg) {
    const uint32_t head = c->n_slots_ + seg;
    c->slots_[head].prev = c->slots_[head].next = head;
  }
  c->free_slots_.reserve(c->n_slots_);
  for (uint32_t s = c->n_slots_; s-- > 0;) c->free_slots_.push_back(s);
  c->protected_cap_ = static_cast<uint32_t>(uint64_t{c->n_slots_} * 4 / 5);
  c->index_.reserve(c->n_slots_);
  c->staging_slot_.assign(inflight, 0);
  if (o.verify) c->seen_hashes_.assign(size_t{inflight} * kMaxVerifyReads, 0);
  for (uint32_t i = inflight; i-- > 0;) c->free_staging_.push_back(i);
  storage::ReaderOptions ro = o.reader;
  ro.depth = std::max(ro.depth, inflight);
  EngramRowCache* self = c.get();
  STRATA_ASSIGN_OR_RETURN(
      c->reader_, storage::OpenAsyncReader(
                      o.files.empty() ? std::vector<storage::FileExtent>{{path, 0}} : o.files, ro,
                      [self](uint64_t tag, const Status& s) { self->OnDone(tag, s); }));
  // A row is read as the aligned blocks that cover it: with 512-byte blocks a row of
  // 264 bytes costs one or two of them, not a 4 KiB page.
  c->align_ = c->reader_->direct() ? storage::DirectReadAlignment(path) : 1;
  const uint32_t page = static_cast<uint32_t>(storage::kDirectIoAlignment);
  c->staging_bytes_ = (max_row + c->align_ - 1) / c->align_ * c->align_ + c->align_;
  c->staging_bytes_ = (c->staging_bytes_ + 63) / 64 * 64;
  c->staging_.reset(static_cast<uint8_t*>(
      std::aligned_alloc(page, (uint64_t{inflight} * c->staging_bytes_ + page - 1) / page * page)));
  if (!c->staging_) return Status::ResourceExhausted("engram row cache: out of memory");
  for (const EngramTableRef& t : c->tables_) {
    if (t.offset + t.rows * t.row_bytes > c->reader_->file_size()) {
      return Status::Corruption(path + ": tensor '" + t.name +
                                "' extends past the end of the file");
    }
  }
  return c;
}

EngramRowCache::~EngramRowCache() {
  if (!reader_) return;
  std::unique_lock lock(mu_);
  pending_.clear();
  const size_t all = staging_slot_.size();
  cv_.wait(lock, [&] { return free_staging_.size() == all; });
  lock.unlock();
  reader_.reset();
}

void EngramRowCache::Unlink(uint32_t s) {
  Slot& x = slots_[s];
  if (x.segment == kNone) return;
  slots_[x.prev].next = x.next;
  slots_[x.next].prev = x.prev;
  --segment_size_[x.segment];
  x.segment = kNone;
}

void EngramRowCache::PushFront(uint32_t s, Segment seg) {
  const uint32_t head = n_slots_ + seg;
  Slot& x = slots_[s];
  x.prev = head;
  x.next = slots_[head].next;
  slots_[x.next].prev = s;
  slots_[head].next = s;
  x.segment = seg;
  ++segment_size_[seg];
}

void EngramRowCache::Touch(uint32_t s) {
  // A second use promotes a row to the protected segment; when that overflows, its
  // least recent row goes back to probation rather than out of the cache.
  Unlink(s);
  PushFront(s, kProtected);
  while (segment_size_[kProtected] > protected_cap_) {
    const uint32_t victim = slots_[n_slots_ + kProtected].prev;
    Unlink(victim);
    PushFront(victim, kProbation);
  }
}

Result<uint32_t> EngramRowCache::Allocate() {
  if (!free_slots_.empty()) {
    const uint32_t s = free_slots_.back();
    free_slots_.pop_back();
    return s;
  }
  for (uint32_t seg : {kProbation, kProtected}) {
    const uint32_t head = n_slots_ + seg;
    for (uint32_t s = slots_[head].prev; s != head; s = slots_[s].prev) {
      if (slots_[s].refs == 0 && slots_[s].state == State::kReady) {
        Unlink(s);
        index_.erase(slots_[s].key);
        slots_[s].state = State::kFree;
        return s;
      }
    }
  }
  return Status::ResourceExhausted("--engram-cache holds " + std::to_string(n_slots_) +
                                   " rows and every one is in use; give it more room");
}

void EngramRowCache::Release(uint32_t s) {
  Slot& x = slots_[s];
  Unlink(s);
  index_.erase(x.key);
  errors_.erase(s);
  x.state = State::kFree;
  free_slots_.push_back(s);
}

Status EngramRowCache::Clear() {
  std::lock_guard lock(mu_);
  // A pinned row is either being read or owed to a Take: neither may vanish.
  if (pinned_slots_ > 0) {
    return Status::InvalidArgument("engram row cache: " + std::to_string(pinned_slots_) +
                                   " rows are still pinned; cannot clear it");
  }
  for (uint32_t s = 0; s < n_slots_; ++s) {
    if (slots_[s].state != State::kFree) Release(s);
  }
  return Status::Ok();
}

storage::ReadOp EngramRowCache::OpFor(uint32_t slot, uint32_t staging) const {
  const uint64_t key = slots_[slot].key;
  const EngramTableRef& t = tables_[key >> 48];
  const uint64_t off = t.offset + (key & ((uint64_t{1} << 48) - 1)) * t.row_bytes;
  const uint64_t start = off / align_ * align_;
  const uint64_t end = (off + t.row_bytes + align_ - 1) / align_ * align_;
  storage::ReadOp op;
  op.offset = start;
  op.length = static_cast<uint32_t>(end - start);
  op.dst = staging_.get() + uint64_t{staging} * staging_bytes_;
  op.tag = staging;
  op.priority = storage::IoPriority::kDemand;
  return op;
}

std::vector<storage::ReadOp> EngramRowCache::Dispatch() {
  std::vector<storage::ReadOp> ops;
  while (!pending_.empty() && !free_staging_.empty()) {
    const uint32_t slot = pending_.front();
    pending_.pop_front();
    const uint32_t staging = free_staging_.back();
    free_staging_.pop_back();
    staging_slot_[staging] = slot;
    ops.push_back(OpFor(slot, staging));
  }
  return ops;
}

Status EngramRowCache::Request(uint32_t table, std::span<const uint64_t> rows) {
  if (table >= tables_.size())
    return Status::InvalidArgument("engram: no table " + std::to_string(table));
  std::vector<uint32_t> misses;
  std::vector<storage::ReadOp> ops;
  {
    std::lock_guard lock(mu_);
    // Check first, so a refused request pins nothing.
    std::vector<uint64_t> fresh;
    for (uint64_t row : rows) {
      if (row >= tables_[table].rows) {
        return Status::InvalidArgument("engram: row " + std::to_string(row) + " is beyond table '" +
                                       tables_[table].name + "' (" +
                                       std::to_string(tables_[table].rows) + " rows)");
      }
      const auto it = index_.find(Key(table, row));
      if (it == index_.end() || slots_[it->second].refs == 0) fresh.push_back(row);
    }
    std::sort(fresh.begin(), fresh.end());
    const size_t newly_pinned =
        static_cast<size_t>(std::unique(fresh.begin(), fresh.end()) - fresh.begin());
    if (pinned_slots_ + newly_pinned > n_slots_) {
      return Status::ResourceExhausted("--engram-cache holds " + std::to_string(n_slots_) +
                                       " rows; " + std::to_string(pinned_slots_ + newly_pinned) +
                                       " would be in use at once; give it more room");
    }
    for (uint64_t row : rows) {
      ++stats_.lookups;
      const uint64_t key = Key(table, row);
      if (auto it = index_.find(key); it != index_.end()) {
        Slot& x = slots_[it->second];
        if (x.refs++ == 0) ++pinned_slots_;
        if (x.state == State::kReady) {
          ++stats_.hits;
          Touch(it->second);
        } else {
          ++stats_.inflight_hits;
        }
        continue;
      }
      STRATA_ASSIGN_OR_RETURN(const uint32_t s, Allocate());
      Slot& x = slots_[s];
      x.key = key;
      x.refs = 1;
      ++pinned_slots_;
      x.state = State::kLoading;
      x.reads = 0;
      x.failures = 0;
      PushFront(s, kProbation);
      index_.emplace(key, s);
      misses.push_back(s);
      ++stats_.misses;
    }
    // In file order: neighbouring rows of a large prefill share pages and queue slots.
    std::sort(misses.begin(), misses.end(),
              [&](uint32_t a, uint32_t b) { return slots_[a].key < slots_[b].key; });
    pending_.insert(pending_.end(), misses.begin(), misses.end());
    ops = Dispatch();
  }
  if (!ops.empty()) reader_->Submit(ops);
  return Status::Ok();
}

void EngramRowCache::OnDone(uint64_t tag, const Status& status) {
  const auto staging = static_cast<uint32_t>(tag);
  std::vector<storage::ReadOp> ops;
  {
    std::lock_guard lock(mu_);
    const uint32_t s = staging_slot_[staging];
    Slot& x = slots_[s];
    const uint64_t key = x.key;
    const EngramTableRef& t = tables_[key >> 48];
    const uint64_t row = key & ((uint64_t{1} << 48) - 1);
    const uint64_t off = t.offset + row * t.row_bytes;
    const uint8_t* bytes = staging_.get() + uint64_t{staging} * staging_bytes_ + off % align_;
    bool again = false;
    if (!status.ok() && ++x.failures < kMaxFailedReads) {
      // The reader already retried; media errors can still pass (as for experts).
      Log(LogModule::kTiers)
          .warn("{}: Engram table '{}' row {}: attempt {} of {} failed: {}", reader_->path(),
                t.name, row, x.failures, kMaxFailedReads, status.message());
      again = true;
    } else if (!status.ok()) {
      x.state = State::kFailed;
      errors_[s] = Status::IOError(reader_->path() + ": Engram table '" + t.name + "' row " +
                                   std::to_string(row) + " at offset " + std::to_string(off) +
                                   " (gave up after " + std::to_string(kMaxFailedReads) +
                                   " attempts): " + status.message());
    } else {
      stats_.bytes_read += OpFor(s, staging).length;
      ++x.reads;
      if (!options_.verify) {
        std::memcpy(SlotData(s), bytes, t.row_bytes);
        x.state = State::kReady;
      } else {
        // Verify: read until two reads agree, any two (as for experts): one transient
        // flip cannot get through, and a flip on every other read cannot keep a good
        // row from being confirmed.
        const uint64_t h = XXH3_64bits(bytes, t.row_bytes);
        uint64_t* seen = &seen_hashes_[size_t{staging} * kMaxVerifyReads];
        uint64_t* seen_end = seen + (x.reads - 1);
        if (std::find(seen, seen_end, h) != seen_end) {
          std::memcpy(SlotData(s), bytes, t.row_bytes);
          x.state = State::kReady;
        } else if (x.reads >= kMaxVerifyReads) {
          x.state = State::kFailed;
          errors_[s] = Status::IOError(reader_->path() + ": Engram table '" + t.name + "' row " +
                                       std::to_string(row) + " at offset " + std::to_string(off) +
                                       ": no two of " + std::to_string(x.reads) + " reads agreed");
        } else {
          *seen_end = h;
          again = true;
        }
      }
    }
    if (again) {
      ops.push_back(OpFor(s, staging));
    } else {
      free_staging_.push_back(staging);
      if (x.state == State::kFailed && x.refs == 0) Release(s);
    }
    std::vector<storage::ReadOp> more = Dispatch();
    ops.insert(ops.end(), more.begin(), more.end());
  }
  cv_.notify_all();
  if (!ops.empty()) reader_->Submit(ops);
}

Status EngramRowCache::Take(uint32_t table, uint64_t row, uint8_t* dst) {
  std::unique_lock lock(mu_);
  const auto it = index_.find(Key(table, row));
  if (it == index_.end() || slots_[it->second].refs == 0) {
    return Status::InvalidArgument("engram: row " + std::to_string(row) +
                                   " was taken but not requested");
  }
  const uint32_t s = it->second;
  if (slots_[s].state == State::kLoading) {
    const uint64_t t0 = NowNs();
    cv_.wait(lock, [&] { return slots_[s].state != State::kLoading; });
    stats_.stall_ns += NowNs() - t0;
  }
  Slot& x = slots_[s];
  Status result;
  if (x.state == State::kReady) {
    std::memcpy(dst, SlotData(s), tables_[table].row_bytes);
  } else {
    result = errors_[s];
  }
  if (--x.refs == 0) {
    --pinned_slots_;
    if (x.state == State::kFailed) Release(s);
  }
  return result;
}

EngramStats EngramRowCache::stats() const {
  std::lock_guard lock(mu_);
  return stats_;
}

}  // namespace strata::tiers

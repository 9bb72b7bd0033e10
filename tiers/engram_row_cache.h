// The Engram row cache: table rows read from NVMe on demand into a fixed arena, kept
// by a segmented LRU (a probation segment for rows seen once, a protected one for
// rows seen again) because n-gram traffic is Zipfian: a hot core that must survive
// the long tail of one-off rows streaming through.
//
// Rows are addressed by the tokens alone, so the engine asks for them as soon as a
// token is known (Request) and collects them when an Engram layer runs (Take): the
// reads overlap every layer before it. Request pins each row until its Take; misses
// are sorted by file offset, deduplicated, and read with direct I/O, one aligned
// 4 KiB (or 8 KiB when the row straddles a page) read per row, through up to
// `max_inflight` staging buffers. A failed read is retried by the reader and then
// resubmitted up to 5 times in all; with `verify` a row is read until two of up to 6
// reads agree. Thread-safe.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "storage/async_reader.h"
#include "tiers/ram_budget.h"
#include "util/status.h"

namespace strata::tiers {

struct EngramTableRef {
  std::string name;     // tensor name, for errors
  uint64_t offset = 0;  // file offset of row 0
  uint64_t rows = 0;
  uint32_t row_bytes = 0;
};

struct EngramCacheOptions {
  uint64_t capacity_bytes = 64ull << 20;
  storage::ReaderOptions reader;
  std::vector<storage::FileExtent> files;  // as ExpertCacheOptions::files
  uint32_t max_inflight = 128;  // staging buffers = reads in flight
  bool verify = false;          // a row must read identically twice (any two of 6)
};

struct EngramStats {
  uint64_t lookups = 0;        // rows asked for
  uint64_t hits = 0;           // already resident
  uint64_t inflight_hits = 0;  // already being read (asked twice in flight)
  uint64_t misses = 0;         // rows read from disk
  uint64_t bytes_read = 0;     // from disk: the aligned blocks that cover the rows
  uint64_t stall_ns = 0;       // time Take waited for a row
  double hit_rate() const {
    return lookups ? static_cast<double>(hits + inflight_hits) / static_cast<double>(lookups) : 0.0;
  }
  EngramStats Since(const EngramStats& before) const;
};

class EngramRowCache {
 public:
  static Result<std::unique_ptr<EngramRowCache>> Create(const std::string& path,
                                                        std::vector<EngramTableRef> tables,
                                                        RamBudget& budget,
                                                        const EngramCacheOptions& options);
  ~EngramRowCache();

  uint64_t capacity_rows() const { return n_slots_; }
  uint32_t row_bytes(uint32_t table) const { return tables_[table].row_bytes; }
  // A row is read as the blocks of this many bytes that cover it (1: buffered reads).
  uint32_t read_alignment() const { return align_; }
  storage::IoBackend backend() const { return reader_->backend(); }

  // Pins every row in `rows` (a row listed twice is pinned twice) and queues reads for
  // those not resident. Never waits. Errors (nothing is pinned then): a row out of
  // range, or more rows pinned than the cache holds.
  Status Request(uint32_t table, std::span<const uint64_t> rows);
  // Waits for a row pinned by Request, copies its bytes to `dst` and unpins it once.
  // Errors: the row's read failed for good (the message names table, row and offset).
  Status Take(uint32_t table, uint64_t row, uint8_t* dst);
  EngramStats stats() const;
  // Empties the cache, so the next Request reads every row from disk again: a cold
  // start without reopening the model (`bench --cold`). Counters are kept. Errors: a
  // row is still pinned (a Request not yet taken).
  Status Clear();

 private:
  enum class State : uint8_t { kFree, kLoading, kReady, kFailed };
  enum Segment : uint8_t { kProbation = 0, kProtected = 1, kNone = 2 };
  struct Slot {
    uint64_t key = 0;
    uint32_t refs = 0;
    State state = State::kFree;
    Segment segment = kNone;
    uint8_t reads = 0;     // verify: reads done for this fill
    uint8_t failures = 0;  // failed reads for this fill
    uint32_t prev = 0, next = 0;
  };
  EngramRowCache() = default;
  static uint64_t Key(uint32_t table, uint64_t row) { return uint64_t{table} << 48 | row; }
  uint8_t* SlotData(uint32_t s) { return arena_.get() + uint64_t{s} * slot_stride_; }
  void Unlink(uint32_t s);
  void PushFront(uint32_t s, Segment seg);
  void Touch(uint32_t s);
  Result<uint32_t> Allocate();
  void Release(uint32_t s);
  // Moves pending rows into free staging buffers; returns the ops to submit.
  std::vector<storage::ReadOp> Dispatch();
  void OnDone(uint64_t tag, const Status& status);
  storage::ReadOp OpFor(uint32_t slot, uint32_t staging) const;

  std::vector<EngramTableRef> tables_;
  EngramCacheOptions options_;
  Reservation reservation_;
  std::unique_ptr<storage::AsyncReader> reader_;

  struct FreeDeleter {
    void operator()(uint8_t* p) const { std::free(p); }
  };
  std::unique_ptr<uint8_t, FreeDeleter> arena_, staging_;
  uint64_t slot_stride_ = 0;
  uint32_t n_slots_ = 0;
  uint32_t staging_bytes_ = 0;
  uint32_t align_ = 1;  // reads cover a row with blocks of this size (direct I/O's alignment)

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Slot> slots_;  // n_slots_ + 2 list heads (probation, protected)
  uint32_t segment_size_[2] = {0, 0};
  uint32_t pinned_slots_ = 0;  // slots with refs > 0 (loading ones included)
  uint32_t protected_cap_ = 0;
  std::vector<uint32_t> free_slots_;
  std::unordered_map<uint64_t, uint32_t> index_;
  std::unordered_map<uint32_t, Status> errors_;  // failed slots' errors
  std::deque<uint32_t> pending_;                 // slots waiting for a staging buffer
  std::vector<uint32_t> free_staging_;
  std::vector<uint32_t> staging_slot_;
  std::vector<uint64_t> seen_hashes_;  // verify: the hashes of each staging buffer's reads
  EngramStats stats_;
};

}  // namespace strata::tiers

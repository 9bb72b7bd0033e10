// The io_uring backend of AsyncReader (see async_reader.h). Internal to storage: use
// OpenAsyncReader(), which falls back to the pread pool when this cannot start.
#pragma once

#include <liburing.h>

#include <mutex>
#include <thread>
#include <vector>

#include "storage/async_reader.h"
#include "storage/file_extents.h"
#include "storage/read_queue.h"

namespace strata::storage {

class UringReader final : public AsyncReader {
 public:
  // Takes ownership of `files` on success and on failure.
  static Result<std::unique_ptr<UringReader>> Open(FileExtents files, bool direct, uint32_t depth,
                                                   uint32_t max_attempts, OnDone on_done);
  ~UringReader() override;

  IoBackend backend() const override { return IoBackend::kUring; }
  bool direct() const override { return direct_; }
  uint32_t depth() const override { return depth_; }
  void Submit(std::span<const ReadOp> ops) override;
  size_t Cancel(uint64_t tag) override;
  void Promote(uint64_t tag) override;
  void RegisterBuffer(uint8_t* base, uint64_t bytes) override;
  ReaderStats stats() const override;

 private:
  struct InFlight {
    ReadOp op;
    uint64_t done = 0;  // bytes already read
    uint32_t attempts = 1;
    bool used = false;
  };
  struct Registered {
    uint8_t* base;
    uint64_t bytes;
  };

  UringReader(FileExtents files, bool direct, uint32_t depth,
              uint32_t max_attempts, OnDone on_done);
  void Reap();
  // REQUIRES: mu_ held. Starts queued ops while fewer than depth_ are in flight.
  void PumpLocked();
  // REQUIRES: mu_ held. Queues the SQE that reads what slot `i` still needs.
  void PrepareLocked(uint32_t i);

  const FileExtents files_;
  const bool direct_;
  const uint32_t depth_;
  const uint32_t max_attempts_;
  const OnDone on_done_;
  io_uring ring_{};
  mutable std::mutex mu_;
  ReadQueue queue_;
  std::vector<InFlight> slots_;
  std::vector<uint32_t> free_slots_;
  std::vector<Registered> registered_;
  ReaderStats stats_;
  bool stop_ = false;
  bool wake_pending_ = false;  // a wake-up NOP is in flight: the reaper will pump the queue
  std::thread reaper_;
};

}  // namespace strata::storage

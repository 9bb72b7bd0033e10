// The pread(2) thread-pool backend of AsyncReader (see async_reader.h); with an
// injected read function it is also the fault-injecting test backend. Internal to
// storage: use OpenAsyncReader().
#pragma once

#include <sys/types.h>

#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "storage/async_reader.h"
#include "storage/file.h"
#include "storage/file_extents.h"
#include "storage/read_queue.h"

namespace strata::storage {

// "[offset, offset + n)" for error messages.
std::string RangeText(uint64_t offset, uint64_t n);

// pread(2)'s signature, so tests can inject faults below the retry logic.

class PreadReader final : public AsyncReader {
 public:
  PreadReader(FileExtents files, bool direct, uint32_t threads,
              uint32_t max_attempts, PreadFn read_fn, IoBackend backend, OnDone on_done);
  ~PreadReader() override;

  IoBackend backend() const override { return backend_; }
  bool direct() const override { return direct_; }
  uint32_t depth() const override { return static_cast<uint32_t>(workers_.size()); }
  void Submit(std::span<const ReadOp> ops) override;
  size_t Cancel(uint64_t tag) override;
  void Promote(uint64_t tag) override;
  ReaderStats stats() const override;

 private:
  void Work();
  Status ReadFully(const ReadOp& op, uint64_t* resubmits);
  const uint32_t max_attempts_;

  const FileExtents files_;
  const bool direct_;
  const IoBackend backend_;
  const PreadFn read_fn_;
  const OnDone on_done_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  ReadQueue queue_;
  ReaderStats stats_;
  bool stop_ = false;
  std::vector<std::thread> workers_;
};

}  // namespace strata::storage

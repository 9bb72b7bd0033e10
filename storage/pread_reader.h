// The pread(2) thread-pool backend of AsyncReader (see async_reader.h): chosen when
// io_uring cannot be set up and with `--io pread`; with an injected read function
// (FaultyPread) it is also the `fault` test backend. Each worker takes the next op
// from the shared queue and reads it to the end, following QueuedReader's rules.
// Internal to storage: use OpenAsyncReader().
#pragma once

#include <sys/types.h>

#include <condition_variable>
#include <thread>
#include <vector>

#include "storage/file.h"
#include "storage/queued_reader.h"

namespace strata::storage {

class PreadReader final : public QueuedReader {
 public:
  // `read_fn`: pread(2), or a stand-in that injects faults below the retry logic.
  PreadReader(FileExtents files, bool direct, uint32_t threads, uint32_t max_attempts,
              PreadFn read_fn, IoBackend backend, OnDone on_done);
  ~PreadReader() override;

  IoBackend backend() const override { return backend_; }
  uint32_t depth() const override { return static_cast<uint32_t>(workers_.size()); }
  void Submit(std::span<const ReadOp> ops) override;

 private:
  void Work();
  Status Read(const ReadOp& op);

  const IoBackend backend_;
  const PreadFn read_fn_;
  std::condition_variable cv_;
  std::vector<std::thread> workers_;
};

}  // namespace strata::storage

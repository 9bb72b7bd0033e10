// What the io_uring and pread backends of AsyncReader share (see async_reader.h): the
// files, the queue of ops waiting for a slot (demand before prefetch; cancel and promote
// by tag), the counters, and the rules for what one read's result means:
//   n > 0, all of it          the op is done
//   n > 0, short              read on from there; with O_DIRECT from the last aligned
//                             offset reached (the kernel refuses unaligned ones); at end
//                             of file the rest is zero-filled (direct reads of the
//                             aligned cover end short there)
//   0 before end of file      an error: the file is shorter than when it was opened
//   -EAGAIN, -EINTR           again after a pause doubling from 20 us, at most kMaxAgain
//                             times in a row (as often when a short read makes no progress)
//   any other -errno          tried again, max_attempts in all, then an error
// Errors are one line naming the file and the op's range. Thread-safe: the backends
// hold mu_ around the queue and the counters.
#pragma once

#include <mutex>

#include "storage/async_reader.h"
#include "storage/file.h"
#include "storage/file_extents.h"
#include "storage/read_queue.h"

namespace strata::storage {

class QueuedReader : public AsyncReader {
 public:
  bool direct() const override { return direct_; }
  size_t Cancel(uint64_t tag) override;
  void Promote(uint64_t tag) override;
  ReaderStats stats() const override;

  static constexpr uint32_t kMaxAgain = 64;

 protected:
  QueuedReader(FileExtents files, bool direct, uint32_t max_attempts, OnDone on_done);

  // One op on its way: how much is read, how often it was tried.
  struct Progress {
    ReadOp op;
    uint64_t done = 0;      // bytes read so far
    uint32_t attempts = 1;  // reads tried after errors, this one included
    uint32_t again = 0;     // EAGAIN (or no progress) in a row
  };
  enum class Next {
    kFinished,  // done, with `status` (Ok or the error)
    kReadMore,  // read the rest from `done` (short read or EAGAIN): a resubmit
    kRetry,     // read the rest again after an error: a retry
  };
  struct Step {
    Next next = Next::kFinished;
    Status status;
    uint32_t pause_us = 0;  // wait this long before reading again
  };
  // What a read of the rest of `p` that returned `result` (bytes, or -errno) means;
  // updates `p`. Pure apart from `p`.
  Step Advance(Progress& p, int64_t result) const;

  const FileExtents files_;
  const bool direct_;
  const uint32_t max_attempts_;
  const uint32_t align_;  // O_DIRECT reads continue from offsets of this alignment
  const OnDone on_done_;
  mutable std::mutex mu_;
  ReadQueue queue_;
  ReaderStats stats_;
  bool stop_ = false;
};

}  // namespace strata::storage

// The io_uring backend of AsyncReader (see async_reader.h). Internal to storage: use
// OpenAsyncReader(), which falls back to the pread pool when this cannot start.
//
// One reaper thread issues every read and reaps every completion. What can go wrong,
// and what happens:
//   the kernel has no IORING_OP_READ   Open() fails: the pread pool takes over
//   io_uring_submit fails (EBUSY, ...)  the SQEs stay in the ring; the reaper, which
//                                       never sleeps longer than kTick, submits again;
//                                       after kSubmitGiveUp of failures in a row every
//                                       op the kernel has not taken fails with the error
//   a read's result                     as QueuedReader says (short reads, EAGAIN,
//                                       EIO, end of file)
// With a FaultPlan (the uring-fault backend) the same faults as the pread fault
// backend are injected into completions and submits, so all of the above is tested.
#pragma once

#include <liburing.h>

#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "storage/queued_reader.h"

namespace strata::storage {

class UringReader final : public QueuedReader {
 public:
  // Takes ownership of `files` on success and on failure.
  // `faults`: inject them (the uring-fault backend); null for real use.
  static Result<std::unique_ptr<UringReader>> Open(FileExtents files, bool direct, uint32_t depth,
                                                   uint32_t max_attempts, OnDone on_done,
                                                   const FaultPlan* faults = nullptr);
  ~UringReader() override;

  IoBackend backend() const override {
    return faults_ ? IoBackend::kUringFault : IoBackend::kUring;
  }
  uint32_t depth() const override { return depth_; }
  void Submit(std::span<const ReadOp> ops) override;
  void RegisterBuffer(uint8_t* base, uint64_t bytes) override;

 private:
  struct InFlight {
    Progress progress;
    bool used = false;
    uint32_t sq_index = 0;  // the SQ position of its latest SQE (is it still unsubmitted?)
    bool spared = false;    // faults: the retry after an injected EIO is let through
  };
  struct Registered {
    uint8_t* base;
    uint64_t bytes;
  };

  UringReader(FileExtents files, bool direct, uint32_t depth, uint32_t max_attempts,
              OnDone on_done, const FaultPlan* faults);
  void Reap();
  // REQUIRES: mu_ held. io_uring_submit, or an injected failure; counts failures.
  void SubmitLocked();
  // REQUIRES: mu_ held. After kSubmitGiveUp failed submits in a row: every op the
  // kernel has not taken, queued or prepared, is collected with its error.
  void GiveUpLocked(std::vector<std::pair<ReadOp, Status>>* failed);
  // REQUIRES: mu_ held. The fault plan's effect on one completion of slot `i`.
  int InjectLocked(uint32_t i, int res, uint32_t* delay_us);
  // REQUIRES: mu_ held. Starts queued ops while fewer than depth_ are in flight.
  void PumpLocked();
  // REQUIRES: mu_ held. Queues the SQE that reads what slot `i` still needs.
  void PrepareLocked(uint32_t i);

  const uint32_t depth_;
  const std::optional<FaultPlan> faults_;
  io_uring ring_{};
  std::vector<InFlight> slots_;
  std::vector<uint32_t> free_slots_;
  std::vector<Registered> registered_;
  bool wake_pending_ = false;  // a wake-up NOP is in flight: the reaper will pump the queue
  uint32_t submit_failures_in_a_row_ = 0;
  int last_submit_error_ = 0;
  bool broken_ = false;  // submits kept failing: every new op fails at once
  uint64_t completions_ = 0, submits_ = 0;  // ordinals for the fault plan
  std::thread reaper_;
};

}  // namespace strata::storage

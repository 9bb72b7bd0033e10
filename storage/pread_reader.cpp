#include "storage/pread_reader.h"

#include <unistd.h>

#include <cerrno>
#include <chrono>

namespace strata::storage {

PreadReader::PreadReader(FileExtents files, bool direct, uint32_t threads, uint32_t max_attempts,
                         PreadFn read_fn, IoBackend backend, OnDone on_done)
    : QueuedReader(std::move(files), direct, max_attempts, std::move(on_done)),
      backend_(backend),
      read_fn_(std::move(read_fn)) {
  if (threads == 0) threads = 1;
  for (uint32_t i = 0; i < threads; ++i) workers_.emplace_back([this] { Work(); });
}

PreadReader::~PreadReader() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  for (auto& w : workers_) w.join();
}

void PreadReader::Submit(std::span<const ReadOp> ops) {
  {
    std::lock_guard lock(mu_);
    for (const ReadOp& op : ops) queue_.Push(op);
  }
  cv_.notify_all();
}

void PreadReader::Work() {
  for (;;) {
    ReadOp op;
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [&] { return stop_ || !queue_.empty(); });
      if (stop_) return;
      op = *queue_.Pop();
    }
    const Status status = Read(op);
    if (status.ok()) {
      std::lock_guard lock(mu_);
      ++stats_.ops;
      stats_.bytes += op.length;
    }
    on_done_(op.tag, status);
  }
}

Status PreadReader::Read(const ReadOp& op) {
  Progress p{.op = op};
  const FileExtents::Open_& file = files_.Resolve(op.offset);
  for (;;) {
    const ssize_t got = read_fn_(file.fd, op.dst + p.done, op.length - p.done,
                                 static_cast<off_t>(op.offset + p.done - file.base));
    const Step step = Advance(p, got < 0 ? -int64_t{errno} : got);
    if (step.next == Next::kFinished) return step.status;
    {
      std::lock_guard lock(mu_);
      ++(step.next == Next::kRetry ? stats_.retries : stats_.resubmits);
    }
    if (step.pause_us) std::this_thread::sleep_for(std::chrono::microseconds(step.pause_us));
  }
}

}  // namespace strata::storage

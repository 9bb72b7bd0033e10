#include "storage/pread_reader.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <thread>

namespace strata::storage {

std::string RangeText(uint64_t offset, uint64_t n) {
  return "[" + std::to_string(offset) + ", " + std::to_string(offset + n) + ")";
}

PreadReader::PreadReader(FileExtents files, bool direct, uint32_t threads, uint32_t max_attempts,
                         PreadFn read_fn, IoBackend backend, OnDone on_done)
    : AsyncReader(files.path(), files.span()),
      max_attempts_(std::max<uint32_t>(1, max_attempts)),
      files_(std::move(files)),
      direct_(direct),
      backend_(backend),
      read_fn_(std::move(read_fn)),
      on_done_(std::move(on_done)) {
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

size_t PreadReader::Cancel(uint64_t tag) {
  std::lock_guard lock(mu_);
  const size_t n = queue_.Cancel(tag);
  stats_.cancelled += n;
  return n;
}

void PreadReader::Promote(uint64_t tag) {
  std::lock_guard lock(mu_);
  queue_.Promote(tag);
}

ReaderStats PreadReader::stats() const {
  std::lock_guard lock(mu_);
  return stats_;
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
    uint64_t resubmits = 0, retries = 0;
    Status status = ReadFully(op, &resubmits);
    while (!status.ok() && retries + 1 < max_attempts_) {
      ++retries;
      status = ReadFully(op, &resubmits);
    }
    {
      std::lock_guard lock(mu_);
      stats_.resubmits += resubmits;
      stats_.retries += retries;
      if (status.ok()) {
        ++stats_.ops;
        stats_.bytes += op.length;
      }
    }
    on_done_(op.tag, status);
  }
}

Status PreadReader::ReadFully(const ReadOp& op, uint64_t* resubmits) {
  uint64_t done = 0;
  const FileExtents::Open_& file = files_.Resolve(op.offset);
  // A direct read may end short only at end of file; the caller asked for the aligned
  // cover of a range, so the bytes it needs are there. Zero the tail it did not get.
  while (done < op.length) {
    const ssize_t got =
        read_fn_(file.fd, op.dst + done, op.length - done, static_cast<off_t>(op.offset + done - file.base));
    if (got < 0) {
      if (errno == EINTR || errno == EAGAIN) {
        ++*resubmits;
        continue;
      }
      return Status::IOError(path() + ": read " + RangeText(op.offset, op.length) + ": " +
                             std::strerror(errno));
    }
    if (got == 0) {
      if (op.offset + done >= file.end()) {
        std::memset(op.dst + done, 0, op.length - done);
        return Status::Ok();
      }
      return Status::IOError(path() + ": read " + RangeText(op.offset, op.length) +
                             " ended early at " + std::to_string(op.offset + done));
    }
    done += static_cast<uint64_t>(got);
    if (done < op.length) ++*resubmits;
  }
  return Status::Ok();
}

}  // namespace strata::storage

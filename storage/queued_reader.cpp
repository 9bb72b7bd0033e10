#include "storage/queued_reader.h"

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace strata::storage {

QueuedReader::QueuedReader(FileExtents files, bool direct, uint32_t max_attempts, OnDone on_done)
    : AsyncReader(files.path(), files.span()),
      files_(std::move(files)),
      direct_(direct),
      max_attempts_(std::max<uint32_t>(1, max_attempts)),
      align_(direct ? DirectReadAlignment(files_.path()) : 1),
      on_done_(std::move(on_done)) {}

size_t QueuedReader::Cancel(uint64_t tag) {
  std::lock_guard lock(mu_);
  const size_t n = queue_.Cancel(tag);
  stats_.cancelled += n;
  return n;
}

void QueuedReader::Promote(uint64_t tag) {
  std::lock_guard lock(mu_);
  queue_.Promote(tag);
}

ReaderStats QueuedReader::stats() const {
  std::lock_guard lock(mu_);
  return stats_;
}

QueuedReader::Step QueuedReader::Advance(Progress& p, int64_t result) const {
  const ReadOp& op = p.op;
  // Built only for an error: this runs once per completed read.
  auto what = [&] { return path() + ": read " + RangeText(op.offset, op.length); };
  if (result == -EAGAIN || result == -EINTR) {
    if (++p.again > kMaxAgain) {
      return {Next::kFinished,
              Status::IOError(what() + ": " + std::strerror(static_cast<int>(-result)) + " " +
                              std::to_string(kMaxAgain) + " times in a row"), 0};
    }
    return {Next::kReadMore, Status::Ok(), 20u << std::min<uint32_t>(p.again - 1, 6)};
  }
  if (result < 0) {
    if (p.attempts < max_attempts_) {
      ++p.attempts;
      return {Next::kRetry, Status::Ok(), 0};
    }
    return {Next::kFinished,
            Status::IOError(what() + ": " + std::strerror(static_cast<int>(-result)) + " (tried " +
                            std::to_string(p.attempts) + " times)"), 0};
  }
  const FileExtents::Open_& file = files_.Resolve(op.offset);
  const uint64_t before = p.done;
  p.done += static_cast<uint64_t>(result);
  if (p.done >= op.length) {
    p.again = 0;
    return {Next::kFinished, Status::Ok(), 0};
  }
  if (op.offset + p.done >= file.end()) {
    std::memset(op.dst + p.done, 0, op.length - p.done);  // the file ends here
    return {Next::kFinished, Status::Ok(), 0};
  }
  if (result == 0) {
    return {Next::kFinished,
            Status::IOError(what() + " ended early at " + std::to_string(op.offset + p.done)), 0};
  }
  // O_DIRECT continues only from an aligned offset: the part past the last aligned
  // byte is read again. A read that gets nowhere counts like EAGAIN.
  p.done = p.done / align_ * align_;
  if (p.done > before) {
    p.again = 0;
  } else if (++p.again > kMaxAgain) {
    return {Next::kFinished, Status::IOError(what() + " keeps ending short at " +
                                             std::to_string(op.offset + before)), 0};
  }
  return {Next::kReadMore, Status::Ok(), 0};
}

}  // namespace strata::storage

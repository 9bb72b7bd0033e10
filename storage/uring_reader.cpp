#include "storage/uring_reader.h"

#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "storage/pread_reader.h"
#include "util/log.h"

namespace strata::storage {
namespace {

constexpr uint64_t kWakeTag = UINT64_MAX;
// The kernel caps one registered buffer at 1 GiB.
constexpr uint64_t kMaxRegisteredBuffer = uint64_t{1} << 30;

}  // namespace

Result<std::unique_ptr<UringReader>> UringReader::Open(FileExtents files, bool direct, uint32_t depth,
                                                       uint32_t max_attempts, OnDone on_done) {
  if (depth == 0) depth = 1;
  auto r = std::unique_ptr<UringReader>(
      new UringReader(std::move(files), direct, depth, max_attempts, std::move(on_done)));
  // Twice the depth: resubmissions and the wake-up NOP never find the SQ full.
  const int err = io_uring_queue_init(depth * 2 + 2, &r->ring_, 0);
  if (err < 0) {
    r->ring_.ring_fd = -1;
    return Status::Unsupported("io_uring_queue_init: " + std::string(std::strerror(-err)));
  }
  r->reaper_ = std::thread([p = r.get()] { p->Reap(); });
  return r;
}

UringReader::UringReader(FileExtents files, bool direct, uint32_t depth, uint32_t max_attempts,
                         OnDone on_done)
    : AsyncReader(files.path(), files.span()),
      files_(std::move(files)),
      direct_(direct),
      depth_(depth),
      max_attempts_(std::max<uint32_t>(1, max_attempts)),
      on_done_(std::move(on_done)),
      slots_(depth) {
  for (uint32_t i = depth; i-- > 0;) free_slots_.push_back(i);
}

UringReader::~UringReader() {
  if (ring_.ring_fd < 0) return;  // Open() failed: no ring, no reaper
  {
    std::lock_guard lock(mu_);
    stop_ = true;
    // Queued ops are dropped; the reaper leaves once the ops in flight have landed,
    // so no read writes into memory the owner is about to free.
    while (queue_.Pop()) {
    }
    io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
    io_uring_prep_nop(sqe);
    io_uring_sqe_set_data64(sqe, kWakeTag);
    io_uring_submit(&ring_);
  }
  reaper_.join();
  if (!registered_.empty()) io_uring_unregister_buffers(&ring_);
  io_uring_queue_exit(&ring_);
}

void UringReader::RegisterBuffer(uint8_t* base, uint64_t bytes) {
  std::vector<iovec> iov;
  std::vector<Registered> regs;
  for (uint64_t off = 0; off < bytes; off += kMaxRegisteredBuffer) {
    const uint64_t n = std::min(kMaxRegisteredBuffer, bytes - off);
    iov.push_back({base + off, n});
    regs.push_back({base + off, n});
  }
  std::lock_guard lock(mu_);
  if (!registered_.empty()) return;  // one arena per reader
  const int err = io_uring_register_buffers(&ring_, iov.data(), static_cast<unsigned>(iov.size()));
  if (err < 0) {
    // Typically RLIMIT_MEMLOCK; plain reads work the same, a little slower.
    Log(LogModule::kStorage)
        .info("{}: io_uring buffer registration refused ({}); using plain reads", path(),
              std::strerror(-err));
    return;
  }
  registered_ = std::move(regs);
}

void UringReader::Submit(std::span<const ReadOp> ops) {
  std::lock_guard lock(mu_);
  if (stop_) return;
  for (const ReadOp& op : ops) queue_.Push(op);
  // The reads are issued by the reaper, not here. io_uring completes a read by running
  // task work on the thread that submitted it, signalling that thread to do so: reads
  // submitted from a compute thread would interrupt it once per completion, and with
  // static partitioning every interrupted thread holds up the rest. A NOP, which
  // completes at once, wakes the reaper instead; one is enough for any number of calls.
  if (!wake_pending_) {
    wake_pending_ = true;
    io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
    io_uring_prep_nop(sqe);
    io_uring_sqe_set_data64(sqe, kWakeTag);
    io_uring_submit(&ring_);
  }
}

size_t UringReader::Cancel(uint64_t tag) {
  std::lock_guard lock(mu_);
  const size_t n = queue_.Cancel(tag);
  stats_.cancelled += n;
  return n;
}

void UringReader::Promote(uint64_t tag) {
  std::lock_guard lock(mu_);
  queue_.Promote(tag);
}

ReaderStats UringReader::stats() const {
  std::lock_guard lock(mu_);
  return stats_;
}

void UringReader::PrepareLocked(uint32_t i) {
  InFlight& f = slots_[i];
  io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
  // Never null: at most depth_ reads plus one NOP are outstanding in a 2*depth+2 ring.
  uint8_t* dst = f.op.dst + f.done;
  const unsigned n = static_cast<unsigned>(f.op.length - f.done);
  const FileExtents::Open_& file = files_.Resolve(f.op.offset);
  const uint64_t offset = f.op.offset + f.done - file.base;
  int buf_index = -1;
  for (size_t b = 0; b < registered_.size(); ++b) {
    if (dst >= registered_[b].base && dst + n <= registered_[b].base + registered_[b].bytes) {
      buf_index = static_cast<int>(b);
      break;
    }
  }
  if (buf_index >= 0) {
    io_uring_prep_read_fixed(sqe, file.fd, dst, n, offset, buf_index);
  } else {
    io_uring_prep_read(sqe, file.fd, dst, n, offset);
  }
  io_uring_sqe_set_data64(sqe, i);
}

void UringReader::PumpLocked() {
  bool any = false;
  while (!free_slots_.empty() && !queue_.empty()) {
    const uint32_t i = free_slots_.back();
    free_slots_.pop_back();
    slots_[i] = {*queue_.Pop(), 0, 1, true};
    PrepareLocked(i);
    any = true;
  }
  if (any) io_uring_submit(&ring_);
}

void UringReader::Reap() {
  for (;;) {
    io_uring_cqe* cqe = nullptr;
    const int err = io_uring_wait_cqe(&ring_, &cqe);
    if (err == -EINTR) continue;
    if (err < 0) {
      Log(LogModule::kStorage).error("{}: io_uring_wait_cqe: {}", path(), std::strerror(-err));
      continue;
    }
    const uint64_t data = io_uring_cqe_get_data64(cqe);
    const int res = cqe->res;
    io_uring_cqe_seen(&ring_, cqe);
    std::unique_lock lock(mu_);
    if (data == kWakeTag) {
      if (stop_ && free_slots_.size() == depth_) return;
      wake_pending_ = false;
      if (!stop_) PumpLocked();
      continue;
    }
    InFlight& f = slots_[static_cast<uint32_t>(data)];
    Status status;
    bool finished = true;
    if (res == -EAGAIN || res == -EINTR) {
      ++stats_.resubmits;
      finished = false;
    } else if (res < 0 && f.attempts < max_attempts_) {
      ++f.attempts;
      ++stats_.retries;
      finished = false;
    } else if (res < 0) {
      status = Status::IOError(path() + ": read " + RangeText(f.op.offset, f.op.length) + ": " +
                               std::strerror(-res));
    } else if (res == 0) {
      if (f.op.offset + f.done >= files_.Resolve(f.op.offset).end()) {
        // Direct reads of the aligned cover end short at end of file.
        std::memset(f.op.dst + f.done, 0, f.op.length - f.done);
      } else {
        status = Status::IOError(path() + ": read " + RangeText(f.op.offset, f.op.length) +
                                 " ended early at " + std::to_string(f.op.offset + f.done));
      }
    } else {
      f.done += static_cast<uint64_t>(res);
      if (f.done < f.op.length) {
        ++stats_.resubmits;
        finished = false;
      }
    }
    if (!finished) {
      PrepareLocked(static_cast<uint32_t>(data));
      io_uring_submit(&ring_);
      continue;
    }
    const ReadOp op = f.op;
    f.used = false;
    free_slots_.push_back(static_cast<uint32_t>(data));
    if (status.ok()) {
      ++stats_.ops;
      stats_.bytes += op.length;
    }
    PumpLocked();
    const bool leave = stop_ && free_slots_.size() == depth_;
    lock.unlock();
    on_done_(op.tag, status);
    if (leave) {
      // The wake-up NOP may still be pending; drain it so the ring can be torn down.
      io_uring_cqe* rest = nullptr;
      while (io_uring_peek_cqe(&ring_, &rest) == 0) io_uring_cqe_seen(&ring_, rest);
      return;
    }
  }
}

}  // namespace strata::storage

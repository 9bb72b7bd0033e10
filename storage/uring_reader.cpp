#include "storage/uring_reader.h"

#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cerrno>
#include <cstring>

#include "storage/queued_reader.h"
#include "util/log.h"

namespace strata::storage {
namespace {

constexpr uint64_t kWakeTag = UINT64_MAX;
// The kernel caps one registered buffer at 1 GiB.
constexpr uint64_t kMaxRegisteredBuffer = uint64_t{1} << 30;
// The reaper wakes at least this often, so an SQE whose submit failed is sent again
// and a wake-up cannot be lost.
constexpr long kTickNs = 20'000'000;
constexpr long kRetryTickNs = 1'000'000;  // while submits are failing
// Failed submits in a row (about 2 s at kRetryTickNs) before the ring counts as broken.
constexpr uint32_t kSubmitGiveUp = 2000;

}  // namespace

Result<std::unique_ptr<UringReader>> UringReader::Open(FileExtents files, bool direct, uint32_t depth,
                                                       uint32_t max_attempts, OnDone on_done,
                                                       const FaultPlan* faults) {
  if (depth == 0) depth = 1;
  auto r = std::unique_ptr<UringReader>(new UringReader(std::move(files), direct, depth,
                                                        max_attempts, std::move(on_done), faults));
  // Twice the depth: resubmissions and the wake-up NOPs never find the SQ full.
  const int err = io_uring_queue_init(depth * 2 + 2, &r->ring_, 0);
  if (err < 0) {
    r->ring_.ring_fd = -1;
    return Status::Unsupported("io_uring_queue_init: " + std::string(std::strerror(-err)));
  }
  // Reads need IORING_OP_READ (Linux 5.6); the reaper's timed wait needs EXT_ARG (5.11),
  // without which liburing would take an SQE behind our lock's back.
  io_uring_probe* probe = io_uring_get_probe_ring(&r->ring_);
  const bool has_read = probe && io_uring_opcode_supported(probe, IORING_OP_READ) &&
                        !(faults && faults->no_read_opcode);
  if (probe) io_uring_free_probe(probe);
  const char* missing = !has_read ? "IORING_OP_READ"
                        : !(r->ring_.features & IORING_FEAT_EXT_ARG) ? "IORING_FEAT_EXT_ARG"
                                                                      : nullptr;
  if (missing) {
    io_uring_queue_exit(&r->ring_);
    r->ring_.ring_fd = -1;
    return Status::Unsupported(std::string("this kernel's io_uring has no ") + missing);
  }
  r->reaper_ = std::thread([p = r.get()] { p->Reap(); });
  return r;
}

UringReader::UringReader(FileExtents files, bool direct, uint32_t depth, uint32_t max_attempts,
                         OnDone on_done, const FaultPlan* faults)
    : QueuedReader(std::move(files), direct, max_attempts, std::move(on_done)),
      depth_(depth),
      faults_(faults ? std::optional<FaultPlan>(*faults) : std::nullopt),
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
    if (!broken_) {
      if (io_uring_sqe* sqe = io_uring_get_sqe(&ring_)) {
        io_uring_prep_nop(sqe);
        io_uring_sqe_set_data64(sqe, kWakeTag);
        SubmitLocked();  // if this fails the reaper's tick still sees stop_
      }
    }
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
  // (A broken ring's reaper fails the ops at its next tick.)
  if (!wake_pending_ && !broken_) {
    if (io_uring_sqe* sqe = io_uring_get_sqe(&ring_)) {
      wake_pending_ = true;
      io_uring_prep_nop(sqe);
      io_uring_sqe_set_data64(sqe, kWakeTag);
      SubmitLocked();  // a failure leaves the NOP in the ring for the reaper's tick
    }
  }
}

void UringReader::SubmitLocked() {
  if (io_uring_sq_ready(&ring_) == 0) return;
  ++submits_;
  const bool inject = faults_ && faults_->submit_fail_every != 0 &&
                      submits_ % faults_->submit_fail_every == 0;
  const int err = inject ? -EBUSY : io_uring_submit(&ring_);
  if (err >= 0) {
    submit_failures_in_a_row_ = 0;
    return;
  }
  // The SQEs stay in the ring: the next submit sends them.
  ++stats_.submit_failures;
  ++submit_failures_in_a_row_;
  last_submit_error_ = -err;
}

void UringReader::GiveUpLocked(std::vector<std::pair<ReadOp, Status>>* failed) {
  if (!broken_) {
    Log(LogModule::kStorage)
        .error("{}: io_uring_submit failed {} times in a row ({}); failing its reads", path(),
               submit_failures_in_a_row_, std::strerror(last_submit_error_));
  }
  broken_ = true;
  const Status status =
      Status::IOError(path() + ": io_uring_submit failed " +
                      std::to_string(submit_failures_in_a_row_) + " times in a row: " +
                      std::strerror(last_submit_error_));
  while (std::optional<ReadOp> op = queue_.Pop()) failed->emplace_back(*op, status);
  // An SQE the kernel has not consumed never will be (no more submits): its read cannot
  // start, so its buffer may be handed back. Consumed ones complete as usual.
  const uint32_t head = io_uring_smp_load_acquire(ring_.sq.khead);
  for (uint32_t i = 0; i < depth_; ++i) {
    InFlight& f = slots_[i];
    if (!f.used || static_cast<int32_t>(f.sq_index - head) < 0) continue;
    failed->emplace_back(f.progress.op, status);
    f.used = false;
    free_slots_.push_back(i);
  }
}

void UringReader::PrepareLocked(uint32_t i) {
  InFlight& f = slots_[i];
  f.sq_index = ring_.sq.sqe_tail;
  io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
  // Never null: at most depth_ reads plus two NOPs are outstanding in a 2*depth+2 ring.
  const Progress& p = f.progress;
  uint8_t* dst = p.op.dst + p.done;
  const unsigned n = static_cast<unsigned>(p.op.length - p.done);
  const FileExtents::Open_& file = files_.Resolve(p.op.offset);
  const uint64_t offset = p.op.offset + p.done - file.base;
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
  if (broken_) return;
  while (!free_slots_.empty() && !queue_.empty()) {
    const uint32_t i = free_slots_.back();
    free_slots_.pop_back();
    slots_[i] = {.progress = {.op = *queue_.Pop()}, .used = true};
    PrepareLocked(i);
  }
  SubmitLocked();
}

int UringReader::InjectLocked(uint32_t i, int res, uint32_t* delay_us) {
  const FaultPlan& p = *faults_;
  const uint64_t k = ++completions_;
  auto fires = [k](uint32_t every) { return every != 0 && k % every == 0; };
  InFlight& f = slots_[i];
  const Progress& pr = f.progress;
  const uint64_t at = pr.op.offset + pr.done, n = pr.op.length - pr.done;
  if (p.eio_always_at >= at && p.eio_always_at < at + n) return -EIO;
  if (fires(p.delay_every)) *delay_us = p.delay_us;
  if (res < 0) return res;
  // Transient, as in the pread fault backend: the op's next completion is spared.
  const bool spared = f.spared;
  f.spared = false;
  if (fires(p.eio_every) && (p.eio_every == 1 || !spared)) {
    f.spared = true;
    return -EIO;
  }
  if (fires(p.eagain_every) && (p.eagain_every == 1 || !spared)) {
    f.spared = true;
    return -EAGAIN;
  }
  if (res > 0 && fires(p.short_every)) {
    // A direct read ends short only at a block boundary.
    const int half = static_cast<int>(static_cast<uint32_t>(res) / 2 / align_ * align_);
    if (half > 0) res = half;
  }
  if (res > 0 && fires(p.flip_every)) {
    pr.op.dst[pr.done + (k * 2654435761u) % static_cast<uint64_t>(res)] ^= 0x5a;
  }
  return res;
}

void UringReader::Reap() {
  for (;;) {
    io_uring_cqe* cqe = nullptr;
    __kernel_timespec tick{};
    {
      std::lock_guard lock(mu_);
      tick.tv_nsec = submit_failures_in_a_row_ ? kRetryTickNs : kTickNs;
    }
    const int err = io_uring_wait_cqe_timeout(&ring_, &cqe, &tick);
    if (err < 0) {
      if (err != -ETIME && err != -EINTR) {
        Log(LogModule::kStorage).error("{}: io_uring_wait_cqe: {}", path(), std::strerror(-err));
      }
      // A tick: send what a failed submit left in the ring, start queued ops, and
      // leave when stopping with nothing in flight.
      std::vector<std::pair<ReadOp, Status>> failed;
      std::unique_lock lock(mu_);
      SubmitLocked();
      if (broken_ || submit_failures_in_a_row_ >= kSubmitGiveUp) GiveUpLocked(&failed);
      if (!stop_) PumpLocked();
      const bool leave = stop_ && free_slots_.size() == depth_;
      lock.unlock();
      for (const auto& [op, status] : failed) on_done_(op.tag, status);
      if (leave) return;
      continue;
    }
    const uint64_t data = io_uring_cqe_get_data64(cqe);
    const int cqe_res = cqe->res;
    io_uring_cqe_seen(&ring_, cqe);
    std::unique_lock lock(mu_);
    if (data == kWakeTag) {
      if (stop_ && free_slots_.size() == depth_) return;
      wake_pending_ = false;
      if (!stop_) PumpLocked();
      continue;
    }
    const uint32_t i = static_cast<uint32_t>(data);
    InFlight& f = slots_[i];
    if (!f.used) continue;  // failed when the ring broke; its SQE was consumed after all
    uint32_t delay_us = 0;
    const int res = faults_ ? InjectLocked(i, cqe_res, &delay_us) : cqe_res;
    const Step step = Advance(f.progress, res);
    if (step.next != Next::kFinished) {
      ++(step.next == Next::kRetry ? stats_.retries : stats_.resubmits);
      if (const uint32_t pause = delay_us + step.pause_us) {
        lock.unlock();
        std::this_thread::sleep_for(std::chrono::microseconds(pause));
        lock.lock();
      }
      PrepareLocked(i);
      SubmitLocked();
      continue;
    }
    const Status status = step.status;
    const ReadOp op = f.progress.op;
    f.used = false;
    free_slots_.push_back(i);
    if (status.ok()) {
      ++stats_.ops;
      stats_.bytes += op.length;
    }
    PumpLocked();
    const bool leave = stop_ && free_slots_.size() == depth_;
    lock.unlock();
    if (delay_us) std::this_thread::sleep_for(std::chrono::microseconds(delay_us));
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

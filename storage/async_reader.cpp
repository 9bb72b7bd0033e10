#include "storage/async_reader.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <thread>

#include "storage/pread_reader.h"
#include "storage/uring_reader.h"
#include "util/log.h"

namespace strata::storage {
namespace {

// The fault backend's read function: pread(2) with the plan's faults, decided by the
// ordinal of each call so a test run is reproducible.
}  // namespace

PreadFn FaultyPread(const FaultPlan& plan) {
  auto counter = std::make_shared<std::atomic<uint64_t>>(0);
  return [plan, counter](int fd, void* dst, size_t n, off_t offset) -> ssize_t {
    const uint64_t k = counter->fetch_add(1) + 1;
    auto fires = [k](uint32_t every) { return every != 0 && k % every == 0; };
    const auto at = static_cast<uint64_t>(offset);
    if (plan.eio_always_at >= at && plan.eio_always_at < at + n) {
      errno = EIO;
      return -1;
    }
    if (fires(plan.delay_every))
      std::this_thread::sleep_for(std::chrono::microseconds(plan.delay_us));
    // Transient: after an injected EIO, this thread's calls are spared until one reads
    // all it asked for, so the retry completes however short reads and other threads'
    // calls fall; only eio_always_at (or eio_every = 1: every read) fails for good.
    thread_local bool just_failed = false;
    if (fires(plan.eio_every) && (plan.eio_every == 1 || !just_failed)) {
      just_failed = true;
      errno = EIO;
      return -1;
    }
    const size_t asked = n;
    if (fires(plan.short_every)) {
      // A direct read can end short only at a block boundary: a half that is not one
      // would make the kernel refuse the read (EINVAL), an error rather than a short read.
      const bool direct = (::fcntl(fd, F_GETFL) & O_DIRECT) != 0;
      const size_t half = direct ? n / 2 / 512 * 512 : n / 2;
      if (half > 0) n = half;
    }
    const ssize_t got = ::pread(fd, dst, n, offset);
    if (got == static_cast<ssize_t>(asked)) just_failed = false;
    // A different byte each time, as real transient corruption would be.
    if (got > 0 && fires(plan.flip_every)) {
      static_cast<uint8_t*>(dst)[(k * 2654435761u) % static_cast<uint64_t>(got)] ^= 0x5a;
    }
    return got;
  };
}

std::string_view IoBackendName(IoBackend b) {
  switch (b) {
    case IoBackend::kUring:
      return "uring";
    case IoBackend::kPread:
      return "pread";
    case IoBackend::kFault:
      return "fault";
    case IoBackend::kUringFault:
      return "uring-fault";
  }
  return "?";
}

uint32_t DirectReadAlignment(const std::string& path) {
#ifdef STATX_DIOALIGN
  struct statx stx {};
  if (::statx(AT_FDCWD, path.c_str(), 0, STATX_DIOALIGN, &stx) == 0 &&
      (stx.stx_mask & STATX_DIOALIGN) && stx.stx_dio_offset_align > 0) {
    const uint32_t a = std::max(stx.stx_dio_offset_align, stx.stx_dio_mem_align);
    // A power of two no larger than a page, or not trusted.
    if ((a & (a - 1)) == 0 && a <= kDirectIoAlignment) return a;
  }
#endif
  return static_cast<uint32_t>(kDirectIoAlignment);
}

Result<std::unique_ptr<AsyncReader>> OpenAsyncReader(const std::string& path,
                                                     const ReaderOptions& options,
                                                     AsyncReader::OnDone on_done) {
  return OpenAsyncReader(std::vector<FileExtent>{{path, 0}}, options, std::move(on_done));
}

Result<std::unique_ptr<AsyncReader>> OpenAsyncReader(const std::vector<FileExtent>& files,
                                                     const ReaderOptions& options,
                                                     AsyncReader::OnDone on_done) {
  bool direct = options.direct;
  STRATA_ASSIGN_OR_RETURN(FileExtents opened, FileExtents::Open(files, &direct));
  const std::string path = opened.path();
  const uint32_t depth = options.depth ? options.depth : 1;
  if (options.backend == IoBackend::kUring || options.backend == IoBackend::kUringFault) {
    const FaultPlan* faults =
        options.backend == IoBackend::kUringFault ? &options.faults : nullptr;
    auto uring =
        UringReader::Open(std::move(opened), direct, depth, options.max_attempts, on_done, faults);
    if (uring.ok()) return std::unique_ptr<AsyncReader>(std::move(uring).value());
    Log(LogModule::kStorage)
        .warn("{}: io_uring unavailable ({}); using the pread thread pool", path,
              uring.status().message());
    // Open() took the descriptors with it: open them again for the pool.
    STRATA_ASSIGN_OR_RETURN(opened, FileExtents::Open(files, &direct));
  }
  // The pread pool: threads block in the kernel, so a few suffice; the queue depth the
  // user asked for still bounds how many are outstanding.
  const uint32_t threads = std::min<uint32_t>(depth, 16);
  if (options.backend == IoBackend::kFault) {
    return std::unique_ptr<AsyncReader>(std::make_unique<PreadReader>(
        std::move(opened), direct, threads, options.max_attempts, FaultyPread(options.faults),
        IoBackend::kFault, std::move(on_done)));
  }
  return std::unique_ptr<AsyncReader>(
      std::make_unique<PreadReader>(std::move(opened), direct, threads, options.max_attempts,
                                    PreadFn(&::pread), IoBackend::kPread, std::move(on_done)));
}

}  // namespace strata::storage

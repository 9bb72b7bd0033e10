// Asynchronous reads of large ranges of one file, for the expert cache. Three backends
// share one contract:
//   uring   io_uring on an O_DIRECT descriptor: bounded queue depth, batched submit and
//           reap, registered buffers when the kernel allows, short reads and -EAGAIN
//           resubmitted. Chosen by default.
//   pread   a pool of threads calling pread(2); chosen when io_uring cannot be set up
//           (old kernel, seccomp, io_uring_disabled) and with `--io pread`.
//   fault   the pread pool over a read function that injects EIO, short reads, delays
//           and flipped bytes, for tests.
//   uring-fault  the uring backend with the same faults injected into its completions
//           (plus EAGAIN storms and failing submits), for tests.
// Ops wait in two FIFO queues, demand before prefetch; at most depth() are in flight.
// Queued ops can be cancelled or promoted to demand until they start. A read that
// fails (EIO and the like) is tried again up to max_attempts in all, as media errors
// can be transient. Every op ends in exactly one call of the completion callback, on a reader
// thread, with Ok or one error line naming the file and range. Thread-safe.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>

#include "storage/file.h"
#include "storage/file_extents.h"
#include "util/status.h"

namespace strata::storage {

// Direct I/O needs offsets, lengths and buffers aligned to the logical block size;
// 4 KiB covers every NVMe and virtio disk in use.
inline constexpr uint64_t kDirectIoAlignment = 4096;

// The alignment direct reads of `path` need (offset, length and buffer), as the kernel
// reports it (statx STATX_DIOALIGN, Linux 6.1+): often 512 bytes, so a small read such
// as an Engram row need not cost a whole 4 KiB. kDirectIoAlignment where not reported.
uint32_t DirectReadAlignment(const std::string& path);

enum class IoPriority : uint8_t { kDemand = 0, kPrefetch = 1 };

struct ReadOp {
  uint64_t offset = 0;  // direct(): multiple of DirectReadAlignment(path)
  uint32_t length = 0;  // direct(): multiple of it too (reads past EOF end short)
  uint8_t* dst = nullptr;
  uint64_t tag = 0;  // handed back on completion; Cancel/Promote act on every op with it
  IoPriority priority = IoPriority::kDemand;
};

enum class IoBackend { kUring, kPread, kFault, kUringFault };
std::string_view IoBackendName(IoBackend b);

// Deterministic faults for the `fault` backend. Each rule fires on reads whose
// ordinal (1-based, counted per reader) is a multiple of `every`, 0 = never.
struct FaultPlan {
  uint32_t eio_every = 0;  // the read fails with EIO (transient: its retry succeeds; 1: every read)
  uint32_t short_every = 0;  // the read returns half the bytes (the backend resubmits)
  uint32_t flip_every = 0;   // one byte of the result is flipped
  uint32_t delay_every = 0;  // the read sleeps delay_us first
  uint32_t delay_us = 2000;
  uint64_t eio_always_at = UINT64_MAX;  // reads covering this file offset always fail
  // uring-fault only:
  uint32_t eagain_every = 0;       // the completion is -EAGAIN (resubmitted, capped)
  uint32_t submit_fail_every = 0;  // io_uring_submit fails with EBUSY (1: always)
  bool no_read_opcode = false;     // the probe finds no IORING_OP_READ: pread takes over
};

struct ReaderStats {
  uint64_t ops = 0;        // completed ops
  uint64_t bytes = 0;      // bytes delivered
  uint64_t resubmits = 0;  // short reads, EAGAIN, EINTR continued
  uint64_t retries = 0;    // failed reads (EIO, ...) tried again
  uint64_t cancelled = 0;  // ops removed before they started
  uint64_t submit_failures = 0;  // uring: io_uring_submit calls that failed (retried)
};

class AsyncReader {
 public:
  using OnDone = std::function<void(uint64_t tag, const Status& status)>;
  virtual ~AsyncReader() = default;

  virtual IoBackend backend() const = 0;
  virtual bool direct() const = 0;  // O_DIRECT: ReadOp alignment rules apply
  virtual uint32_t depth() const = 0;
  const std::string& path() const { return path_; }
  uint64_t file_size() const { return file_size_; }

  // Queues the ops; never waits for I/O.
  virtual void Submit(std::span<const ReadOp> ops) = 0;
  // Removes queued ops with `tag` that have not started; returns how many.
  virtual size_t Cancel(uint64_t tag) = 0;
  // Moves queued ops with `tag` to the demand queue.
  virtual void Promote(uint64_t tag) = 0;
  // Registers [base, base + bytes) for fixed-buffer reads where the backend and the
  // kernel allow; a refusal is not an error (reads then use plain buffers).
  virtual void RegisterBuffer(uint8_t* /*base*/, uint64_t /*bytes*/) {}
  virtual ReaderStats stats() const = 0;

 protected:
  AsyncReader(std::string path, uint64_t file_size)
      : path_(std::move(path)), file_size_(file_size) {}

 private:
  std::string path_;
  uint64_t file_size_;
};

struct ReaderOptions {
  IoBackend backend = IoBackend::kUring;
  uint32_t depth = 32;        // ops in flight (pread: threads)
  bool direct = true;         // O_DIRECT; falls back to buffered if the filesystem refuses
  uint32_t max_attempts = 3;  // a failed read (EIO, ...) is tried this often in all
  FaultPlan faults;           // kFault only
};

// A pread stand-in that injects `plan`'s faults (the fault backend's, and the pinned
// loads' in tests). Thread-safe.
PreadFn FaultyPread(const FaultPlan& plan);

// Opens `path` for the backend. kUring (and kUringFault) fall back to kPread (logged)
// when io_uring cannot be set up or cannot read; errors name the file.
Result<std::unique_ptr<AsyncReader>> OpenAsyncReader(const std::string& path,
                                                     const ReaderOptions& options,
                                                     AsyncReader::OnDone on_done);
// The same over several files in one address space (the shards of a split set):
// ReadOp offsets are in that space, and path() is the first file's.
Result<std::unique_ptr<AsyncReader>> OpenAsyncReader(const std::vector<FileExtent>& files,
                                                     const ReaderOptions& options,
                                                     AsyncReader::OnDone on_done);

}  // namespace strata::storage

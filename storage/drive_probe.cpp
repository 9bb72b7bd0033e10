#include "storage/drive_probe.h"

#include <algorithm>

#include "storage/gguf.h"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <random>
#include <vector>

namespace strata::storage {
namespace {

using Clock = std::chrono::steady_clock;

struct AlignedFree {
  void operator()(uint8_t* p) const { std::free(p); }
};

// Keeps `depth` reads of `length` bytes in flight for `seconds`, each at an offset
// drawn by `next_offset`; returns reads completed per second.
Result<double> Pump(const std::string& path, IoBackend backend, uint32_t depth, uint32_t length,
                    double seconds, const std::function<uint64_t()>& next_offset,
                    DriveProfile* profile) {
  std::mutex mu;
  std::condition_variable cv;
  uint64_t done = 0;
  std::vector<uint32_t> free_slots;  // buffers whose read has landed
  Status failure;
  ReaderOptions o;
  o.backend = backend;
  o.depth = depth;
  std::unique_ptr<AsyncReader> reader;
  STRATA_ASSIGN_OR_RETURN(reader, OpenAsyncReader(path, o, [&](uint64_t slot, const Status& s) {
                            std::lock_guard lock(mu);
                            ++done;
                            free_slots.push_back(static_cast<uint32_t>(slot));
                            if (!s.ok() && failure.ok()) failure = s;
                            cv.notify_all();
                          }));
  profile->direct = reader->direct();
  profile->backend = reader->backend();
  std::unique_ptr<uint8_t, AlignedFree> buf(
      static_cast<uint8_t*>(std::aligned_alloc(kDirectIoAlignment, uint64_t{length} * depth)));
  uint64_t submitted = 0;
  auto submit = [&](uint32_t slot) {
    const ReadOp op{next_offset(), length, buf.get() + uint64_t{slot} * length, slot,
                    IoPriority::kDemand};
    reader->Submit({&op, 1});
    ++submitted;
  };
  const auto start = Clock::now();
  for (uint32_t i = 0; i < depth; ++i) submit(i);
  uint64_t seen = 0;
  for (;;) {
    std::unique_lock lock(mu);
    cv.wait(lock, [&] { return done > seen; });
    if (!failure.ok()) return failure;
    seen = done;
    std::vector<uint32_t> slots;
    slots.swap(free_slots);
    lock.unlock();
    const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
    if (elapsed >= seconds) {
      // Let the reads in flight land before the buffer goes away.
      lock.lock();
      cv.wait(lock, [&] { return done == submitted; });
      return static_cast<double>(seen) / elapsed;
    }
    for (uint32_t slot : slots) submit(slot);
  }
}

}  // namespace

Result<DriveProfile> MeasureDrive(const std::string& model_path, double seconds, uint32_t depth) {
  // A split set is probed through its largest shard (they share a drive as a rule).
  std::string path = model_path;
  if (auto set = ReadGgufFile(model_path); set.ok() && set->is_split()) {
    uint64_t largest = 0;
    for (const GgufShard& s : set->shards()) {
      if (s.size > largest) largest = s.size, path = s.path;
    }
  }
  DriveProfile p;
  p.rand_depth = depth;
  std::unique_ptr<AsyncReader> probe;
  uint64_t size = 0;
  {
    STRATA_ASSIGN_OR_RETURN(probe, OpenAsyncReader(path, {}, [](uint64_t, const Status&) {}));
    size = probe->file_size();
  }
  // Sequential as the expert cache reads: 512 KiB pieces of long ranges, many in flight.
  constexpr uint32_t kSeq = 512 << 10;
  if (size < 2 * uint64_t{kSeq}) {
    return Status::InvalidArgument(path + ": too small (" + std::to_string(size) +
                                   " bytes) to measure the drive with");
  }
  // Bundle-like: random 4 MiB extents anywhere in the file, each read as eight
  // consecutive 512 KiB pieces, many extents in flight at once.
  std::mt19937_64 rng(std::random_device{}());
  // Files under 4 MiB (a small shard) use the largest whole number of pieces instead.
  const uint64_t extent = std::min<uint64_t>(4 << 20, size / kSeq * kSeq);
  uint64_t cursor = 0, left = 0;
  auto seq_next = [&] {
    if (left == 0) {
      cursor = (rng() % (size / extent)) * extent;
      left = extent / kSeq;
    }
    --left;
    const uint64_t at = cursor;
    cursor += kSeq;
    return at;
  };
  STRATA_ASSIGN_OR_RETURN(double seq_rate,
                          Pump(path, IoBackend::kUring, depth, kSeq, seconds, seq_next, &p));
  p.seq_bytes_per_s = seq_rate * kSeq;
  const uint64_t blocks = size / kDirectIoAlignment;
  auto rand_next = [&] { return (rng() % blocks) * kDirectIoAlignment; };
  STRATA_ASSIGN_OR_RETURN(
      p.rand_4k_iops,
      Pump(path, IoBackend::kUring, depth, uint32_t(kDirectIoAlignment), seconds, rand_next, &p));
  return p;
}

}  // namespace strata::storage

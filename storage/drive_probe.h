// What the drive holding a file can deliver, measured the way the expert cache reads:
// O_DIRECT through the async reader (io_uring, else the pread pool). "Sequential" GB/s
// is what bundle reads get: random 4 MiB extents of the file, each as consecutive
// 512 KiB reads, `depth` reads in flight (how the expert cache reads); and random
// 4 KiB reads per second at the same depth. Each test is time-boxed, so the probe costs about
// 2 x `seconds`. The page cache is bypassed (O_DIRECT); on filesystems that refuse
// O_DIRECT the numbers include the page cache and say so.
#pragma once

#include <cstdint>
#include <string>

#include "storage/async_reader.h"
#include "util/status.h"

namespace strata::storage {

struct DriveProfile {
  double seq_bytes_per_s = 0;
  double rand_4k_iops = 0;
  uint32_t rand_depth = 0;
  bool direct = true;
  IoBackend backend = IoBackend::kUring;
};

// `path`: any file; a shard of a split GGUF set measures the set's largest shard.
Result<DriveProfile> MeasureDrive(const std::string& path, double seconds = 1.5,
                                  uint32_t depth = 32);

}  // namespace strata::storage

// How much memory this process may really use: the kernel's MemAvailable, capped by
// every memory cgroup limit above the process (v1 or v2, as in a container), less what
// each such cgroup already holds that cannot be reclaimed. `--ram-budget auto`, the
// default budget and `plan` all start from this. Reads /proc and /sys; thread-safe.
#pragma once

#include <cstdint>
#include <string>

namespace strata {

struct AvailableMemory {
  uint64_t mem_available = 0;  // /proc/meminfo MemAvailable; 0 if unreadable
  uint64_t cgroup_limit = 0;   // the tightest limit above us; 0 if none
  uint64_t cgroup_free = 0;    // that cgroup's limit less its unreclaimable usage
  std::string cgroup;          // the limiting cgroup's directory, for messages

  // What may be used: the smaller of MemAvailable and the cgroup's room; 0 if unknown.
  uint64_t bytes() const;
  // "MemAvailable 21.3 GiB" or "the memory cgroup limit 4.00 GiB (4.00 GiB free)".
  std::string Describe() const;
};

// Where to look: the real roots, or a fake tree in tests.
struct MemorySources {
  std::string proc = "/proc";
  std::string cgroup_mount = "/sys/fs/cgroup";
};

AvailableMemory ReadAvailableMemory(const MemorySources& sources = {});

}  // namespace strata

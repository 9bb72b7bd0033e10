#pragma once

#include <cstddef>
#include <cstdint>

namespace strata {

// Transparent huge pages for weight memory. Matrix-vector products stream hundreds of
// megabytes per token; with 4 KiB pages every 4 KiB of weights costs a TLB miss and a
// page walk, with 2 MiB pages one per 2 MiB. Kernels set to THP "madvise" (Debian's
// default) only back a range with huge pages when asked, so we ask. Advisory only: a
// kernel without THP, or one set to "never", keeps 4 KiB pages and nothing else changes.
inline constexpr size_t kHugePageBytes = size_t{2} << 20;

// Asks for huge pages over [p, p + bytes); the kernel uses them for the 2 MiB-aligned
// part. Returns false when the kernel refused (no THP): a speed hint, never an error.
bool AdviseHugePages(void* p, size_t bytes);

// A 64-byte aligned buffer for weights; when it is at least one huge page long, it is
// 2 MiB aligned and its whole huge pages are advised (the tail keeps 4 KiB pages, so
// RSS never exceeds the bytes asked for by more than a page). Free with std::free.
// nullptr when out of memory.
uint8_t* AllocateWeights(size_t bytes);

}  // namespace strata

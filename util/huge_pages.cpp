#include "util/huge_pages.h"

#include <sys/mman.h>

#include <cstdlib>

namespace strata {

bool AdviseHugePages(void* p, size_t bytes) {
#ifdef MADV_HUGEPAGE
  return bytes > 0 && ::madvise(p, bytes, MADV_HUGEPAGE) == 0;
#else
  (void)p;
  (void)bytes;
  return false;
#endif
}

uint8_t* AllocateWeights(size_t bytes) {
  if (bytes < kHugePageBytes) {
    // aligned_alloc wants a size that is a multiple of the alignment.
    const size_t rounded = bytes ? (bytes + 63) / 64 * 64 : 64;
    return static_cast<uint8_t*>(std::aligned_alloc(64, rounded));
  }
  const size_t rounded = (bytes + kHugePageBytes - 1) / kHugePageBytes * kHugePageBytes;
  auto* p = static_cast<uint8_t*>(std::aligned_alloc(kHugePageBytes, rounded));
  if (p) AdviseHugePages(p, rounded);
  return p;
}

}  // namespace strata

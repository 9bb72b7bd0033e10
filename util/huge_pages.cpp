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
  // Huge-page aligned, but not rounded up: only the whole huge pages inside the buffer
  // are advised, and its tail stays on 4 KiB pages. Rounding up would commit up to
  // 2 MiB past every tensor's end, RSS the RAM budget does not count (posix_memalign,
  // unlike aligned_alloc, takes a size that is not a multiple of the alignment).
  void* p = nullptr;
  if (::posix_memalign(&p, kHugePageBytes, bytes) != 0) return nullptr;
  AdviseHugePages(p, bytes / kHugePageBytes * kHugePageBytes);
  return static_cast<uint8_t*>(p);
}

}  // namespace strata

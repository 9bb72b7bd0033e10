// Overflow-checked unsigned arithmetic for sizes and offsets read from untrusted files.
// Every function returns false instead of wrapping. O(1), thread-safe.
#pragma once

#include <cstdint>

namespace strata {

[[nodiscard]] inline bool CheckedAdd(uint64_t a, uint64_t b, uint64_t* out) {
  return !__builtin_add_overflow(a, b, out);
}
[[nodiscard]] inline bool CheckedMul(uint64_t a, uint64_t b, uint64_t* out) {
  return !__builtin_mul_overflow(a, b, out);
}
// Rounds x up to a multiple of `align` (a power of two).
[[nodiscard]] inline bool CheckedAlignUp(uint64_t x, uint64_t align, uint64_t* out) {
  uint64_t bumped;
  if (!CheckedAdd(x, align - 1, &bumped)) return false;
  *out = bumped & ~(align - 1);
  return true;
}
inline bool IsPowerOfTwo(uint64_t x) { return x != 0 && (x & (x - 1)) == 0; }

}  // namespace strata

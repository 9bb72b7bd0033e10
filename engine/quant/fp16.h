// IEEE half and bfloat16 conversions in portable scalar code, round-to-nearest-even,
// bit-exact with ggml's reference conversions. Pure; thread-safe.
#pragma once

#include <cstdint>
#include <cstring>

namespace strata::engine {

inline uint32_t FloatBits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
inline float BitsFloat(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// Round half away from zero, as roundf/lround do, without a libm call in hot loops.
inline int RoundToInt(float x) { return static_cast<int>(x + (x >= 0.0f ? 0.5f : -0.5f)); }

float HalfToFloat(uint16_t h);
uint16_t FloatToHalf(float f);

inline float Bf16ToFloat(uint16_t b) { return BitsFloat(static_cast<uint32_t>(b) << 16); }
inline uint16_t FloatToBf16(float f) {
  uint32_t u = FloatBits(f);
  if ((u & 0x7fffffff) > 0x7f800000) return static_cast<uint16_t>((u >> 16) | 64);  // quiet NaN
  u += 0x7fff + ((u >> 16) & 1);
  return static_cast<uint16_t>(u >> 16);
}

}  // namespace strata::engine

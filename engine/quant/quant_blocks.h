// Internal to engine/quant: ggml's block structs, byte-identical (sizes are asserted).
#pragma once

#include <cstdint>

namespace strata::engine {

inline constexpr int kQK8_0 = 32;
inline constexpr int kQK4_0 = 32;
inline constexpr int kQK5_0 = 32;
inline constexpr int kQK_K = 256;

struct BlockQ8_0 {
  uint16_t d;  // f16 scale
  int8_t qs[kQK8_0];
};
static_assert(sizeof(BlockQ8_0) == 34);

struct BlockQ4_0 {
  uint16_t d;
  uint8_t qs[kQK4_0 / 2];  // value j in the low nibble of byte j, value j+16 in the high
};
static_assert(sizeof(BlockQ4_0) == 18);

struct BlockQ5_0 {
  uint16_t d;
  uint8_t qh[4];  // fifth bits, value j at bit j
  uint8_t qs[kQK5_0 / 2];
};
static_assert(sizeof(BlockQ5_0) == 22);

struct BlockQ4_K {
  uint16_t d;             // super-block scale for the 6-bit scales
  uint16_t dmin;          // super-block scale for the 6-bit mins
  uint8_t scales[12];     // 8 scales and 8 mins, 6 bits each, packed
  uint8_t qs[kQK_K / 2];  // per 64 values: 32 bytes, low nibbles first then high
};
static_assert(sizeof(BlockQ4_K) == 144);

}  // namespace strata::engine

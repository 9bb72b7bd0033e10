// Internal to engine/quant: ggml's block structs, byte-identical (sizes are asserted).
#pragma once

#include <cstdint>

namespace strata::engine {

inline constexpr int kQK8_0 = 32;
inline constexpr int kQK4_0 = 32;
inline constexpr int kQK5_0 = 32;
inline constexpr int kQK_K = 256;

inline constexpr int kQKMxfp4 = 32;

// MXFP4 (OCP microscaling): 32 E2M1 values sharing one E8M0 scale (2^(e-127)).
struct BlockMxfp4 {
  uint8_t e;               // E8M0 exponent; 255 is NaN
  uint8_t qs[kQKMxfp4 / 2];  // value j in the low nibble of byte j, value j+16 in the high
};
static_assert(sizeof(BlockMxfp4) == 17);

// E2M1 codes as doubled integers (so they fit int8 exactly): code c means
// kMxfp4Doubled[c] / 2. Codes 8..15 are the negatives of 0..7.
inline constexpr int8_t kMxfp4Doubled[16] = {0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12};

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

struct BlockQ4_1 {
  uint16_t d;  // scale
  uint16_t m;  // min: value = d * q + m, q in 0..15
  uint8_t qs[16];
};
static_assert(sizeof(BlockQ4_1) == 20);

struct BlockQ5_1 {
  uint16_t d;
  uint16_t m;
  uint8_t qh[4];
  uint8_t qs[16];
};
static_assert(sizeof(BlockQ5_1) == 24);

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

struct BlockQ2_K {
  uint8_t scales[kQK_K / 16];  // per 16 values: low nibble scale, high nibble min
  uint8_t qs[kQK_K / 4];       // 2-bit quants
  uint16_t d;                  // super-scale of the scales
  uint16_t dmin;               // super-scale of the mins
};
static_assert(sizeof(BlockQ2_K) == 84);

struct BlockQ3_K {
  uint8_t hmask[kQK_K / 8];  // high bit of each 3-bit quant
  uint8_t qs[kQK_K / 4];     // low 2 bits
  uint8_t scales[12];        // 16 six-bit scales (stored + 32), packed
  uint16_t d;
};
static_assert(sizeof(BlockQ3_K) == 110);

struct BlockQ5_K {
  uint16_t d;
  uint16_t dmin;
  uint8_t scales[12];     // as Q4_K
  uint8_t qh[kQK_K / 8];  // fifth bits: pair p uses bits 2p (low half) and 2p+1 (high)
  uint8_t qs[kQK_K / 2];
};
static_assert(sizeof(BlockQ5_K) == 176);

struct BlockQ6_K {
  uint8_t ql[kQK_K / 2];      // low 4 bits
  uint8_t qh[kQK_K / 4];      // high 2 bits
  int8_t scales[kQK_K / 16];  // one per 16 values
  uint16_t d;
};
static_assert(sizeof(BlockQ6_K) == 210);

// Quant l (0..31) of 32-value sub-block j (0..7) of a Q4_K / Q5_K super-block: the
// low or high nibble of qs[32 * (j / 2) + l], plus for Q5_K bit j of qh[l] as bit 4.
inline int SubBlockQuant(const BlockQ4_K& x, int j, int l) {
  return (x.qs[32 * (j / 2) + l] >> (4 * (j % 2))) & 0xF;
}
inline int SubBlockQuant(const BlockQ5_K& x, int j, int l) {
  return ((x.qs[32 * (j / 2) + l] >> (4 * (j % 2))) & 0xF) | (((x.qh[l] >> j) & 1) << 4);
}

// ggml's packing of eight 6-bit scales and eight 6-bit mins into the 12 scale bytes
// of Q4_K and Q5_K super-blocks.
inline void PackScaleMin(int j, uint8_t scale, uint8_t min, uint8_t* q) {
  if (j < 4) {
    q[j] = scale;
    q[j + 4] = min;
  } else {
    q[j + 4] = static_cast<uint8_t>((scale & 0xF) | ((min & 0xF) << 4));
    q[j - 4] |= static_cast<uint8_t>((scale >> 4) << 6);
    q[j] |= static_cast<uint8_t>((min >> 4) << 6);
  }
}

inline void UnpackScaleMin(int j, const uint8_t* q, uint8_t* scale, uint8_t* min) {
  if (j < 4) {
    *scale = q[j] & 63;
    *min = q[j + 4] & 63;
  } else {
    *scale = static_cast<uint8_t>((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
    *min = static_cast<uint8_t>((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
  }
}

}  // namespace strata::engine

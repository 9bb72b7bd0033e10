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

// The IQ family (llama.cpp's i-quants; docs/QUANT_IQ.md). All but IQ4_NL are super-blocks
// of 256 values with one f16 scale (IQ1_M's is spread over its scale bytes).
struct BlockIq2xxs {
  uint16_t d;
  uint16_t qs[kQK_K / 8];  // per 32 values, two words: 4 grid indices; 4 x 7 sign bits + scale
};
static_assert(sizeof(BlockIq2xxs) == 66);

struct BlockIq2xs {
  uint16_t d;
  uint16_t qs[kQK_K / 8];     // per 8 values: grid index (9 bits) | sign index (7 bits) << 9
  uint8_t scales[kQK_K / 32];  // per 32 values: low nibble for the first 16, high the rest
};
static_assert(sizeof(BlockIq2xs) == 74);

struct BlockIq2s {
  uint16_t d;
  uint8_t qs[kQK_K / 4];       // 32 low bytes of grid indices, then 32 sign bytes
  uint8_t qh[kQK_K / 32];      // per 32 values: bits 8-9 of its 4 indices
  uint8_t scales[kQK_K / 32];  // as IQ2_XS
};
static_assert(sizeof(BlockIq2s) == 82);

struct BlockIq3xxs {
  uint16_t d;
  uint8_t qs[3 * kQK_K / 8];  // 64 grid indices (4 values each), then per 32 values a
                              // word of 4 x 7 sign bits + scale in the top 4 bits
};
static_assert(sizeof(BlockIq3xxs) == 98);

struct BlockIq3s {
  uint16_t d;
  uint8_t qs[kQK_K / 4];      // low bytes of 64 grid indices
  uint8_t qh[kQK_K / 32];     // per 32 values: bit 8 of its 8 indices
  uint8_t signs[kQK_K / 8];   // one bit per weight
  uint8_t scales[kQK_K / 64];  // per 32 values a nibble (low nibble first)
};
static_assert(sizeof(BlockIq3s) == 110);

struct BlockIq1s {
  uint16_t d;
  uint8_t qs[kQK_K / 8];    // low bytes of 32 grid indices
  uint16_t qh[kQK_K / 32];  // per 32 values: bits 8-10 of its 4 indices (3 each), scale in
                            // bits 12-14, delta sign in bit 15
};
static_assert(sizeof(BlockIq1s) == 50);

struct BlockIq1m {
  uint8_t qs[kQK_K / 8];      // low bytes of 32 grid indices
  uint8_t qh[kQK_K / 16];     // per 16 values a byte: 2 x (3 index bits, 1 delta sign bit)
  uint8_t scales[kQK_K / 32];  // per 16 values 3 bits; the f16 super-scale's 4 nibbles in
                              // the top nibble of each of the 4 words
};
static_assert(sizeof(BlockIq1m) == 56);

inline constexpr int kQK4_NL = 32;
struct BlockIq4nl {
  uint16_t d;
  uint8_t qs[kQK4_NL / 2];  // code j in the low nibble of byte j, code j+16 in the high
};
static_assert(sizeof(BlockIq4nl) == 18);

struct BlockIq4xs {
  uint16_t d;
  uint16_t scales_h;           // per 32 values the top 2 bits of its 6-bit scale
  uint8_t scales_l[kQK_K / 64];  // per 32 values the low 4 bits (low nibble first)
  uint8_t qs[kQK_K / 2];       // per 32 values 16 bytes, as IQ4_NL
};
static_assert(sizeof(BlockIq4xs) == 136);

// IQ1_S and IQ1_M shift every grid value by +-1/8 ("delta"), per 32 (IQ1_S) or 8 values.
inline constexpr float kIq1Delta = 0.125f;

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

// The codebooks of llama.cpp's IQ ("i-quant") formats: each grid entry packs one point
// of 8 (or 4) small values, one byte each, lowest byte first. A block stores an index
// into its type's grid per group of 8 (or 4) weights, so the grid is the format.
//   IQ2_XXS  256 x 8, values {8, 25, 43}      IQ3_XXS  256 x 4, values 4..62 step 8
//   IQ2_XS   512 x 8, values {8, 25, 43}      IQ3_S    512 x 4, odd values 1..15
//   IQ2_S   1024 x 8, values {8, 25, 43}      IQ1_S/IQ1_M  2048 x 8, int8 {-1, 0, 1}
// IQ4_NL and IQ4_XS map a 4-bit code through the 16 non-uniform kIq4nlValues.
// Pure data; thread-safe.
#pragma once

#include <cstdint>

namespace strata::engine {

extern const uint64_t kIq2xxsGrid[256];
extern const uint64_t kIq2xsGrid[512];
extern const uint64_t kIq2sGrid[1024];
extern const uint64_t kIq1sGrid[2048];
extern const uint32_t kIq3xxsGrid[256];
extern const uint32_t kIq3sGrid[512];
extern const int8_t kIq4nlValues[16];

// IQ2_XXS, IQ2_XS and IQ3_XXS store the signs of 8 weights in 7 bits: the eighth sign
// is whatever makes the number of negative weights even. Bit j set: weight j negative.
inline uint8_t SignsFromIndex7(uint32_t index7) {
  return static_cast<uint8_t>(index7 | ((__builtin_popcount(index7 & 127) & 1) << 7));
}

// Byte j of a grid entry (the value of weight j of its group).
inline uint8_t GridByte(uint64_t entry, int j) { return static_cast<uint8_t>(entry >> (8 * j)); }

}  // namespace strata::engine

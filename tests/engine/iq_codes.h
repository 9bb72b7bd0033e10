// Test helper: an IQ row of random codes. Every bit pattern of an IQ block is a valid
// block, so random bytes reach every grid index and sign pattern; only the f16 scale is
// set, to a finite `scale` (IQ1_M keeps it in the top nibbles of its four scale words).
#pragma once

#include <cstdint>
#include <cstring>
#include <vector>

#include "engine/quant/fp16.h"
#include "storage/ggml_types.h"
#include "tools/synthetic_weights.h"

namespace strata::testing {

inline constexpr storage::GgmlType kIqTypes[] = {
    storage::GgmlType::kIQ2_XXS, storage::GgmlType::kIQ2_XS, storage::GgmlType::kIQ2_S,
    storage::GgmlType::kIQ3_XXS, storage::GgmlType::kIQ3_S,  storage::GgmlType::kIQ1_S,
    storage::GgmlType::kIQ1_M,   storage::GgmlType::kIQ4_NL, storage::GgmlType::kIQ4_XS};

inline std::vector<uint8_t> RandomIqCodes(storage::GgmlType type, int64_t n, uint64_t seed, float scale) {
  const auto& info = storage::TypeInfo(type);
  std::vector<uint8_t> row(*storage::RowBytes(type, n));
  tools::Rng rng(seed);
  for (auto& b : row) b = static_cast<uint8_t>(rng.Next() >> 56);
  const uint16_t h = engine::FloatToHalf(scale);
  for (size_t off = 0; off < row.size(); off += info.block_bytes) {
    if (type == storage::GgmlType::kIQ1_M) {
      constexpr size_t kScales = 48;  // offset of BlockIq1m::scales
      uint16_t sc[4];
      std::memcpy(sc, &row[off + kScales], sizeof(sc));
      for (int w = 0; w < 4; ++w) {
        sc[w] = static_cast<uint16_t>((sc[w] & 0x0fff) | (((h >> (4 * w)) & 15) << 12));
      }
      std::memcpy(&row[off + kScales], sc, sizeof(sc));
    } else {
      std::memcpy(&row[off], &h, sizeof(h));
    }
  }
  return row;
}

}  // namespace strata::testing

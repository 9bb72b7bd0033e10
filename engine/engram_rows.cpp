#include "engine/engram_rows.h"

#include <array>
#include <cmath>
#include <cstring>

#include "engine/quant/fp16.h"
#include "engine/quant/quantize.h"

namespace strata::engine {
namespace {

float E4m3Value(uint8_t c) {
  const int exp = (c >> 3) & 15, man = c & 7;
  const float mag = exp != 0 ? std::ldexp(static_cast<float>(8 + man), exp - 10)
                             : std::ldexp(static_cast<float>(man), -9);
  return (c & 0x80) ? -mag : mag;
}

const std::array<float, 256>& E4m3Table() {
  static const std::array<float, 256> table = [] {
    std::array<float, 256> t{};
    for (int c = 0; c < 256; ++c) t[c] = E4m3Value(static_cast<uint8_t>(c));
    return t;
  }();
  return table;
}

float RoundToBf16(float x) {
  uint32_t bits;
  std::memcpy(&bits, &x, 4);
  bits = (bits + 0x7fff + ((bits >> 16) & 1)) & 0xffff0000u;
  std::memcpy(&x, &bits, 4);
  return x;
}

}  // namespace

bool DecodeEngramRow(EngramEncoding encoding, const uint8_t* row, uint32_t dim, float* out) {
  switch (encoding) {
    case EngramEncoding::kE4m3Row264: {
      const std::array<float, 256>& table = E4m3Table();
      for (uint32_t g = 0; g < dim / 32; ++g) {
        const uint8_t s = row[dim + g];
        if (s == 255) return false;
        const float scale = E8m0ToFloat(s);
        for (uint32_t j = g * 32; j < g * 32 + 32; ++j) {
          if ((row[j] & 0x7f) == 0x7f) return false;
          out[j] = RoundToBf16(table[row[j]] * scale);
        }
      }
      return true;
    }
    case EngramEncoding::kQ4KRow144:
      DequantizeRow(storage::GgmlType::kQ4_K, row, dim, out);
      return true;
    case EngramEncoding::kF16:
      DequantizeRow(storage::GgmlType::kF16, row, dim, out);
      return true;
    case EngramEncoding::kBF16:
      DequantizeRow(storage::GgmlType::kBF16, row, dim, out);
      return true;
    case EngramEncoding::kQ8_0:
      DequantizeRow(storage::GgmlType::kQ8_0, row, dim, out);
      return true;
    case EngramEncoding::kF32:
      std::memcpy(out, row, size_t{dim} * 4);
      return true;
  }
  return false;
}

uint8_t EncodeE4m3(float value) {
  const std::array<float, 256>& table = E4m3Table();
  const uint8_t sign = std::signbit(value) ? 0x80 : 0;
  const float mag = std::fabs(value);
  uint8_t best = 0;
  float best_err = mag;
  for (uint8_t c = 1; c < 0x7f; ++c) {  // positive finite codes, ascending
    const float err = std::fabs(table[c] - mag);
    if (err < best_err) {
      best_err = err;
      best = c;
    }
  }
  return static_cast<uint8_t>(sign | best);
}

}  // namespace strata::engine

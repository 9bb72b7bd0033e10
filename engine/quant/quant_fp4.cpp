// MXFP4: 32 E2M1 values (±{0, 0.5, 1, 1.5, 2, 3, 4, 6}) per power-of-two E8M0 scale, as
// DeepSeek-V4 ships its routed experts (docs/GGUF.md §1: 17-byte blocks, the scale first,
// value j in the low nibble of qs[j] and j+16 in the high).
#include <algorithm>
#include <cmath>
#include <cstring>

#include "engine/quant/quant_blocks.h"
#include "engine/quant/quantize.h"

namespace strata::engine {
namespace {

// The code whose value is nearest to v (in units of the block scale, doubled); ties go
// to the smaller magnitude, which is also the even mantissa. The doubled magnitudes
// are 0 1 2 3 4 6 8 12: the code is the number of midpoints strictly below |v|.
uint8_t NearestCode(float doubled) {
  static constexpr float kMidpoints[7] = {0.5f, 1.5f, 2.5f, 3.5f, 5.0f, 7.0f, 10.0f};
  const float a = std::fabs(doubled);
  uint8_t best = 0;
  for (float m : kMidpoints) best = static_cast<uint8_t>(best + (a > m));
  return best != 0 && doubled < 0 ? static_cast<uint8_t>(best | 8) : best;
}

// Encodes one block at exponent e; returns the squared error.
double EncodeBlock(const float* x, uint8_t e, BlockMxfp4* y) {
  const float inv = 2.0f / E8m0ToFloat(e);  // to doubled units
  const float half = E8m0ToFloat(e) / 2;
  double err = 0;
  y->e = e;
  std::memset(y->qs, 0, sizeof(y->qs));
  for (int j = 0; j < kQKMxfp4; ++j) {
    const uint8_t c = NearestCode(x[j] * inv);
    y->qs[j % 16] |= static_cast<uint8_t>(j < 16 ? c : c << 4);
    const double d = x[j] - half * kMxfp4Doubled[c];
    err += d * d;
  }
  return err;
}

}  // namespace

float E8m0ToFloat(uint8_t e) { return std::ldexp(1.0f, static_cast<int>(e) - 127); }

void QuantizeRowMxfp4(const float* src, int64_t n, void* dst) {
  auto* y = static_cast<BlockMxfp4*>(dst);
  for (int64_t b = 0; b < n / kQKMxfp4; ++b) {
    const float* x = src + b * kQKMxfp4;
    float amax = 0;
    for (int j = 0; j < kQKMxfp4; ++j) amax = std::max(amax, std::fabs(x[j]));
    if (amax == 0) {
      EncodeBlock(x, 127, &y[b]);
      continue;
    }
    // The smallest scale that holds amax within the largest code (6), and the next one
    // down, which clips the top value but resolves the rest twice as finely: keep the
    // one with the smaller error.
    int e = static_cast<int>(std::ceil(std::log2(amax / 6.0f))) + 127;
    e = std::clamp(e, 1, 254);
    BlockMxfp4 finer;
    const double err_fit = EncodeBlock(x, static_cast<uint8_t>(e), &y[b]);
    if (EncodeBlock(x, static_cast<uint8_t>(e - 1), &finer) < err_fit) y[b] = finer;
  }
}

void DequantizeRowMxfp4(const void* src, int64_t n, float* dst) {
  const auto* x = static_cast<const BlockMxfp4*>(src);
  for (int64_t b = 0; b < n / kQKMxfp4; ++b) {
    const float half = E8m0ToFloat(x[b].e) / 2;
    for (int j = 0; j < 16; ++j) {
      dst[b * kQKMxfp4 + j] = half * kMxfp4Doubled[x[b].qs[j] & 0x0F];
      dst[b * kQKMxfp4 + j + 16] = half * kMxfp4Doubled[x[b].qs[j] >> 4];
    }
  }
}

}  // namespace strata::engine

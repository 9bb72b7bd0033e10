// Q4_K: 256-value super-blocks of eight 32-value sub-blocks, each with its own 6-bit
// scale and 6-bit min; value = d * scale * q - dmin * min with q in 0..15.
#include <algorithm>
#include <cmath>

#include "engine/quant/fp16.h"
#include "engine/quant/quant_blocks.h"
#include "engine/quant/quantize.h"

namespace strata::engine {
namespace {

// ggml's packing of eight 6-bit scales and eight 6-bit mins into 12 bytes.
void PackScaleMin(int j, uint8_t scale, uint8_t min, uint8_t* q) {
  if (j < 4) {
    q[j] = scale;
    q[j + 4] = min;
  } else {
    q[j + 4] = static_cast<uint8_t>((scale & 0xF) | ((min & 0xF) << 4));
    q[j - 4] |= static_cast<uint8_t>((scale >> 4) << 6);
    q[j] |= static_cast<uint8_t>((min >> 4) << 6);
  }
}

void UnpackScaleMin(int j, const uint8_t* q, uint8_t* scale, uint8_t* min) {
  if (j < 4) {
    *scale = q[j] & 63;
    *min = q[j + 4] & 63;
  } else {
    *scale = static_cast<uint8_t>((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
    *min = static_cast<uint8_t>((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
  }
}

}  // namespace

void QuantizeRowQ4_K(const float* src, int64_t n, void* dst) {
  auto* y = static_cast<BlockQ4_K*>(dst);
  for (int64_t b = 0; b < n / kQK_K; ++b) {
    const float* x = src + b * kQK_K;
    float sub_scale[8], sub_min[8];  // value = sub_scale * q - sub_min
    float max_scale = 0, max_min = 0;
    for (int j = 0; j < 8; ++j) {
      const float* xs = x + 32 * j;
      float lo = xs[0], hi = xs[0];
      for (int l = 1; l < 32; ++l) {
        lo = std::min(lo, xs[l]);
        hi = std::max(hi, xs[l]);
      }
      lo = std::min(lo, 0.0f);  // mins are stored as non-negative offsets
      sub_scale[j] = (hi - lo) / 15.0f;
      sub_min[j] = -lo;
      max_scale = std::max(max_scale, sub_scale[j]);
      max_min = std::max(max_min, sub_min[j]);
    }
    const float d = max_scale / 63.0f;
    const float dmin = max_min / 63.0f;
    y[b].d = FloatToHalf(d);
    y[b].dmin = FloatToHalf(dmin);
    // Quantise against the rounded f16 super-scales, exactly as decode will see them.
    const float d_used = HalfToFloat(y[b].d);
    const float dmin_used = HalfToFloat(y[b].dmin);
    std::fill(std::begin(y[b].scales), std::end(y[b].scales), 0);
    uint8_t ls[8], lm[8];
    for (int j = 0; j < 8; ++j) {
      ls[j] = static_cast<uint8_t>(
          std::clamp<long>(d_used ? std::lround(sub_scale[j] / d_used) : 0, 0, 63));
      lm[j] = static_cast<uint8_t>(
          std::clamp<long>(dmin_used ? std::lround(sub_min[j] / dmin_used) : 0, 0, 63));
    }
    for (int j = 0; j < 8; ++j) PackScaleMin(j, ls[j], lm[j], y[b].scales);
    for (int j = 0; j < 8; ++j) {
      const float scale = d_used * ls[j];
      const float offset = dmin_used * lm[j];
      const float inv = scale ? 1.0f / scale : 0.0f;
      uint8_t* qs = y[b].qs + 32 * (j / 2);
      for (int l = 0; l < 32; ++l) {
        const int q = std::clamp<int>(RoundToInt((x[32 * j + l] + offset) * inv), 0, 15);
        if (j % 2 == 0) {
          qs[l] = static_cast<uint8_t>(q);
        } else {
          qs[l] = static_cast<uint8_t>(qs[l] | (q << 4));
        }
      }
    }
  }
}

void DequantizeRowQ4_K(const void* src, int64_t n, float* dst) {
  const auto* x = static_cast<const BlockQ4_K*>(src);
  for (int64_t b = 0; b < n / kQK_K; ++b) {
    const float d = HalfToFloat(x[b].d);
    const float dmin = HalfToFloat(x[b].dmin);
    float* y = dst + b * kQK_K;
    for (int pair = 0; pair < 4; ++pair) {
      const uint8_t* qs = x[b].qs + 32 * pair;
      uint8_t sc, m;
      UnpackScaleMin(2 * pair, x[b].scales, &sc, &m);
      const float d1 = d * sc, m1 = dmin * m;
      UnpackScaleMin(2 * pair + 1, x[b].scales, &sc, &m);
      const float d2 = d * sc, m2 = dmin * m;
      for (int l = 0; l < 32; ++l) y[64 * pair + l] = d1 * (qs[l] & 0xF) - m1;
      for (int l = 0; l < 32; ++l) y[64 * pair + 32 + l] = d2 * (qs[l] >> 4) - m2;
    }
  }
}

}  // namespace strata::engine

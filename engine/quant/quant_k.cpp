// Q4_K: 256-value super-blocks of eight 32-value sub-blocks, each with its own 6-bit
// scale and 6-bit min; value = d * scale * q - dmin * min with q in 0..15.
#include <algorithm>
#include <cmath>

#include "engine/quant/fp16.h"
#include "engine/quant/quant_blocks.h"
#include "engine/quant/quantize.h"

namespace strata::engine {
namespace {

// The shared half of the Q4_K and Q5_K quantisers: per 32-value sub-block a scale
// (range / max_q) and a non-negative min, both quantised to 6 bits against the f16
// super-scales d and dmin (written to *d, *dmin). Returns the rounded 6-bit values.
void ChooseScalesAndMins(const float* x, float max_q, uint16_t* d, uint16_t* dmin, uint8_t* scales,
                         uint8_t ls[8], uint8_t lm[8]) {
  float sub_scale[8], sub_min[8], max_scale = 0, max_min = 0;
  for (int j = 0; j < 8; ++j) {
    const float* xs = x + 32 * j;
    float lo = xs[0], hi = xs[0];
    for (int l = 1; l < 32; ++l) {
      lo = std::min(lo, xs[l]);
      hi = std::max(hi, xs[l]);
    }
    lo = std::min(lo, 0.0f);  // mins are stored as non-negative offsets
    sub_scale[j] = (hi - lo) / max_q;
    sub_min[j] = -lo;
    max_scale = std::max(max_scale, sub_scale[j]);
    max_min = std::max(max_min, sub_min[j]);
  }
  *d = FloatToHalf(max_scale / 63.0f);
  *dmin = FloatToHalf(max_min / 63.0f);
  // Quantise against the rounded f16 super-scales, exactly as decode will see them.
  const float d_used = HalfToFloat(*d), dmin_used = HalfToFloat(*dmin);
  std::fill(scales, scales + 12, 0);
  for (int j = 0; j < 8; ++j) {
    ls[j] = static_cast<uint8_t>(
        std::clamp<long>(d_used ? std::lround(sub_scale[j] / d_used) : 0, 0, 63));
    lm[j] = static_cast<uint8_t>(
        std::clamp<long>(dmin_used ? std::lround(sub_min[j] / dmin_used) : 0, 0, 63));
    PackScaleMin(j, ls[j], lm[j], scales);
  }
}

// Q4_K and Q5_K decode: value = d * scale_j * q - dmin * min_j per sub-block j.
template <typename Block>
void DequantizeScaleMinRow(const Block* x, int64_t n, float* dst) {
  for (int64_t b = 0; b < n / kQK_K; ++b) {
    const float d = HalfToFloat(x[b].d), dmin = HalfToFloat(x[b].dmin);
    for (int j = 0; j < 8; ++j) {
      uint8_t sc, m;
      UnpackScaleMin(j, x[b].scales, &sc, &m);
      for (int l = 0; l < 32; ++l)
        dst[b * kQK_K + 32 * j + l] = d * sc * SubBlockQuant(x[b], j, l) - dmin * m;
    }
  }
}

}  // namespace

void QuantizeRowQ4_K(const float* src, int64_t n, void* dst) {
  auto* y = static_cast<BlockQ4_K*>(dst);
  for (int64_t b = 0; b < n / kQK_K; ++b) {
    const float* x = src + b * kQK_K;
    uint8_t ls[8], lm[8];
    ChooseScalesAndMins(x, 15.0f, &y[b].d, &y[b].dmin, y[b].scales, ls, lm);
    const float d_used = HalfToFloat(y[b].d), dmin_used = HalfToFloat(y[b].dmin);
    for (int j = 0; j < 8; ++j) {
      const float scale = d_used * ls[j];
      const float offset = dmin_used * lm[j];
      const float inv = scale ? 1.0f / scale : 0.0f;
      uint8_t* qs = y[b].qs + 32 * (j / 2);
      for (int l = 0; l < 32; ++l) {
        const int q = std::clamp<int>(RoundToInt((x[32 * j + l] + offset) * inv), 0, 15);
        qs[l] = static_cast<uint8_t>(j % 2 == 0 ? q : (qs[l] | (q << 4)));
      }
    }
  }
}

void DequantizeRowQ4_K(const void* src, int64_t n, float* dst) {
  DequantizeScaleMinRow(static_cast<const BlockQ4_K*>(src), n, dst);
}

// Q5_K: as Q4_K with 31 levels; the fifth bit of value l of pair p (64 values) is bit
// 2p (first 32) or 2p+1 (second 32) of qh[l].
void QuantizeRowQ5_K(const float* src, int64_t n, void* dst) {
  auto* y = static_cast<BlockQ5_K*>(dst);
  for (int64_t b = 0; b < n / kQK_K; ++b) {
    const float* x = src + b * kQK_K;
    uint8_t ls[8], lm[8];
    ChooseScalesAndMins(x, 31.0f, &y[b].d, &y[b].dmin, y[b].scales, ls, lm);
    const float d_used = HalfToFloat(y[b].d), dmin_used = HalfToFloat(y[b].dmin);
    std::fill(std::begin(y[b].qh), std::end(y[b].qh), 0);
    for (int j = 0; j < 8; ++j) {
      const float scale = d_used * ls[j], offset = dmin_used * lm[j];
      const float inv = scale ? 1.0f / scale : 0.0f;
      uint8_t* qs = y[b].qs + 32 * (j / 2);
      for (int l = 0; l < 32; ++l) {
        const int q = std::clamp(RoundToInt((x[32 * j + l] + offset) * inv), 0, 31);
        qs[l] = static_cast<uint8_t>(j % 2 == 0 ? (q & 0xF) : (qs[l] | ((q & 0xF) << 4)));
        if (q & 0x10) y[b].qh[l] |= static_cast<uint8_t>(1u << j);
      }
    }
  }
}

void DequantizeRowQ5_K(const void* src, int64_t n, float* dst) {
  DequantizeScaleMinRow(static_cast<const BlockQ5_K*>(src), n, dst);
}

// Q6_K: value = d * scale[g] * (q - 32), q in 0..63, one int8 scale per 16 values. In
// each half of 128 values, value l (l < 32) of quarter k takes its low nibble from
// ql[l + 32 * (k % 2)] (low nibble for k < 2, high for k >= 2) and its two high bits
// from bits 2k..2k+1 of qh[l].
void QuantizeRowQ6_K(const float* src, int64_t n, void* dst) {
  auto* y = static_cast<BlockQ6_K*>(dst);
  for (int64_t b = 0; b < n / kQK_K; ++b) {
    const float* x = src + b * kQK_K;
    float group_scale[16], max_abs_scale = 0;
    for (int g = 0; g < 16; ++g) {
      float amax = 0;
      for (int l = 0; l < 16; ++l) amax = std::max(amax, std::fabs(x[16 * g + l]));
      group_scale[g] = amax / 31.0f;
      max_abs_scale = std::max(max_abs_scale, group_scale[g]);
    }
    const float d = max_abs_scale / 127.0f;
    y[b].d = FloatToHalf(d);
    const float d_used = HalfToFloat(y[b].d);
    int q[kQK_K];
    for (int g = 0; g < 16; ++g) {
      const int sc = std::clamp(d_used ? RoundToInt(group_scale[g] / d_used) : 0, -128, 127);
      y[b].scales[g] = static_cast<int8_t>(sc);
      const float step = d_used * static_cast<float>(sc);
      const float inv = step ? 1.0f / step : 0.0f;
      for (int l = 0; l < 16; ++l)
        q[16 * g + l] = std::clamp(RoundToInt(x[16 * g + l] * inv), -32, 31) + 32;
    }
    std::fill(std::begin(y[b].ql), std::end(y[b].ql), 0);
    std::fill(std::begin(y[b].qh), std::end(y[b].qh), 0);
    for (int half = 0; half < 2; ++half) {
      uint8_t* ql = y[b].ql + 64 * half;
      uint8_t* qh = y[b].qh + 32 * half;
      const int* qv = q + 128 * half;
      for (int l = 0; l < 32; ++l) {
        ql[l] = static_cast<uint8_t>((qv[l] & 0xF) | ((qv[l + 64] & 0xF) << 4));
        ql[l + 32] = static_cast<uint8_t>((qv[l + 32] & 0xF) | ((qv[l + 96] & 0xF) << 4));
        qh[l] = static_cast<uint8_t>((qv[l] >> 4) | ((qv[l + 32] >> 4) << 2) |
                                     ((qv[l + 64] >> 4) << 4) | ((qv[l + 96] >> 4) << 6));
      }
    }
  }
}

void DequantizeRowQ6_K(const void* src, int64_t n, float* dst) {
  const auto* x = static_cast<const BlockQ6_K*>(src);
  for (int64_t b = 0; b < n / kQK_K; ++b) {
    const float d = HalfToFloat(x[b].d);
    for (int half = 0; half < 2; ++half) {
      const uint8_t* ql = x[b].ql + 64 * half;
      const uint8_t* qh = x[b].qh + 32 * half;
      const int8_t* sc = x[b].scales + 8 * half;
      float* y = dst + b * kQK_K + 128 * half;
      for (int l = 0; l < 32; ++l) {
        const int is = l / 16;
        const int q1 = ((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
        const int q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
        const int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
        const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
        y[l] = d * sc[is + 0] * q1;
        y[l + 32] = d * sc[is + 2] * q2;
        y[l + 64] = d * sc[is + 4] * q3;
        y[l + 96] = d * sc[is + 6] * q4;
      }
    }
  }
}

}  // namespace strata::engine

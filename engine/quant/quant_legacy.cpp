// Q8_0, Q4_0 and Q5_0: one f16 scale per 32 values, symmetric.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "engine/quant/fp16.h"
#include "engine/quant/quant_blocks.h"
#include "engine/quant/quantize.h"

namespace strata::engine {
namespace {

// The value of largest magnitude, keeping its sign (ggml's convention for Q4_0/Q5_0:
// the extreme maps to the most negative code, which has one more step than the top).
float SignedAbsMax(const float* x, int n) {
  float amax = 0, max = 0;
  for (int j = 0; j < n; ++j) {
    if (std::fabs(x[j]) > amax) {
      amax = std::fabs(x[j]);
      max = x[j];
    }
  }
  return max;
}

}  // namespace

void QuantizeRowQ8_0(const float* src, int64_t n, void* dst) {
  auto* y = static_cast<BlockQ8_0*>(dst);
  for (int64_t b = 0; b < n / kQK8_0; ++b) {
    const float* x = src + b * kQK8_0;
    float amax = 0;
    for (int j = 0; j < kQK8_0; ++j) amax = std::max(amax, std::fabs(x[j]));
    const float d = amax / 127.0f;
    const float id = d ? 1.0f / d : 0.0f;
    y[b].d = FloatToHalf(d);
    for (int j = 0; j < kQK8_0; ++j) y[b].qs[j] = static_cast<int8_t>(RoundToInt(x[j] * id));
  }
}

void DequantizeRowQ8_0(const void* src, int64_t n, float* dst) {
  const auto* x = static_cast<const BlockQ8_0*>(src);
  for (int64_t b = 0; b < n / kQK8_0; ++b) {
    const float d = HalfToFloat(x[b].d);
    for (int j = 0; j < kQK8_0; ++j) dst[b * kQK8_0 + j] = x[b].qs[j] * d;
  }
}

void QuantizeRowQ4_0(const float* src, int64_t n, void* dst) {
  auto* y = static_cast<BlockQ4_0*>(dst);
  for (int64_t b = 0; b < n / kQK4_0; ++b) {
    const float* x = src + b * kQK4_0;
    const float d = SignedAbsMax(x, kQK4_0) / -8.0f;
    const float id = d ? 1.0f / d : 0.0f;
    y[b].d = FloatToHalf(d);
    for (int j = 0; j < kQK4_0 / 2; ++j) {
      const int q0 = std::min(15, static_cast<int>(x[j] * id + 8.5f));
      const int q1 = std::min(15, static_cast<int>(x[j + kQK4_0 / 2] * id + 8.5f));
      y[b].qs[j] = static_cast<uint8_t>(q0 | (q1 << 4));
    }
  }
}

void DequantizeRowQ4_0(const void* src, int64_t n, float* dst) {
  const auto* x = static_cast<const BlockQ4_0*>(src);
  for (int64_t b = 0; b < n / kQK4_0; ++b) {
    const float d = HalfToFloat(x[b].d);
    for (int j = 0; j < kQK4_0 / 2; ++j) {
      dst[b * kQK4_0 + j] = ((x[b].qs[j] & 0x0F) - 8) * d;
      dst[b * kQK4_0 + j + kQK4_0 / 2] = ((x[b].qs[j] >> 4) - 8) * d;
    }
  }
}

void QuantizeRowQ5_0(const float* src, int64_t n, void* dst) {
  auto* y = static_cast<BlockQ5_0*>(dst);
  for (int64_t b = 0; b < n / kQK5_0; ++b) {
    const float* x = src + b * kQK5_0;
    const float d = SignedAbsMax(x, kQK5_0) / -16.0f;
    const float id = d ? 1.0f / d : 0.0f;
    y[b].d = FloatToHalf(d);
    uint32_t qh = 0;
    for (int j = 0; j < kQK5_0 / 2; ++j) {
      const int q0 = std::min(31, static_cast<int>(x[j] * id + 16.5f));
      const int q1 = std::min(31, static_cast<int>(x[j + kQK5_0 / 2] * id + 16.5f));
      y[b].qs[j] = static_cast<uint8_t>((q0 & 0x0F) | ((q1 & 0x0F) << 4));
      qh |= static_cast<uint32_t>((q0 & 0x10) >> 4) << j;
      qh |= static_cast<uint32_t>((q1 & 0x10) >> 4) << (j + kQK5_0 / 2);
    }
    std::memcpy(y[b].qh, &qh, sizeof(qh));
  }
}

void DequantizeRowQ5_0(const void* src, int64_t n, float* dst) {
  const auto* x = static_cast<const BlockQ5_0*>(src);
  for (int64_t b = 0; b < n / kQK5_0; ++b) {
    const float d = HalfToFloat(x[b].d);
    uint32_t qh;
    std::memcpy(&qh, x[b].qh, sizeof(qh));
    for (int j = 0; j < kQK5_0 / 2; ++j) {
      const int hi0 = ((qh >> j) << 4) & 0x10;
      const int hi1 = (qh >> (j + 12)) & 0x10;
      dst[b * kQK5_0 + j] = (((x[b].qs[j] & 0x0F) | hi0) - 16) * d;
      dst[b * kQK5_0 + j + kQK5_0 / 2] = (((x[b].qs[j] >> 4) | hi1) - 16) * d;
    }
  }
}

// Q4_1 and Q5_1: asymmetric, value = d * q + m with m the block minimum.
namespace {
template <int kLevels>
void MinMaxScale(const float* x, float* d, float* m) {
  float lo = x[0], hi = x[0];
  for (int j = 1; j < 32; ++j) {
    lo = std::min(lo, x[j]);
    hi = std::max(hi, x[j]);
  }
  *d = (hi - lo) / kLevels;
  *m = lo;
}
}  // namespace

void QuantizeRowQ4_1(const float* src, int64_t n, void* dst) {
  auto* y = static_cast<BlockQ4_1*>(dst);
  for (int64_t b = 0; b < n / 32; ++b) {
    const float* x = src + b * 32;
    float d, m;
    MinMaxScale<15>(x, &d, &m);
    const float id = d ? 1.0f / d : 0.0f;
    y[b].d = FloatToHalf(d);
    y[b].m = FloatToHalf(m);
    for (int j = 0; j < 16; ++j) {
      const int q0 = std::min(15, static_cast<int>((x[j] - m) * id + 0.5f));
      const int q1 = std::min(15, static_cast<int>((x[j + 16] - m) * id + 0.5f));
      y[b].qs[j] = static_cast<uint8_t>(q0 | (q1 << 4));
    }
  }
}

void DequantizeRowQ4_1(const void* src, int64_t n, float* dst) {
  const auto* x = static_cast<const BlockQ4_1*>(src);
  for (int64_t b = 0; b < n / 32; ++b) {
    const float d = HalfToFloat(x[b].d), m = HalfToFloat(x[b].m);
    for (int j = 0; j < 16; ++j) {
      dst[b * 32 + j] = (x[b].qs[j] & 0x0F) * d + m;
      dst[b * 32 + j + 16] = (x[b].qs[j] >> 4) * d + m;
    }
  }
}

void QuantizeRowQ5_1(const float* src, int64_t n, void* dst) {
  auto* y = static_cast<BlockQ5_1*>(dst);
  for (int64_t b = 0; b < n / 32; ++b) {
    const float* x = src + b * 32;
    float d, m;
    MinMaxScale<31>(x, &d, &m);
    const float id = d ? 1.0f / d : 0.0f;
    y[b].d = FloatToHalf(d);
    y[b].m = FloatToHalf(m);
    uint32_t qh = 0;
    for (int j = 0; j < 16; ++j) {
      const int q0 = std::min(31, static_cast<int>((x[j] - m) * id + 0.5f));
      const int q1 = std::min(31, static_cast<int>((x[j + 16] - m) * id + 0.5f));
      y[b].qs[j] = static_cast<uint8_t>((q0 & 0x0F) | ((q1 & 0x0F) << 4));
      qh |= static_cast<uint32_t>((q0 & 0x10) >> 4) << j;
      qh |= static_cast<uint32_t>((q1 & 0x10) >> 4) << (j + 16);
    }
    std::memcpy(y[b].qh, &qh, sizeof(qh));
  }
}

void DequantizeRowQ5_1(const void* src, int64_t n, float* dst) {
  const auto* x = static_cast<const BlockQ5_1*>(src);
  for (int64_t b = 0; b < n / 32; ++b) {
    const float d = HalfToFloat(x[b].d), m = HalfToFloat(x[b].m);
    uint32_t qh;
    std::memcpy(&qh, x[b].qh, sizeof(qh));
    for (int j = 0; j < 16; ++j) {
      dst[b * 32 + j] = ((x[b].qs[j] & 0x0F) | (((qh >> j) & 1) << 4)) * d + m;
      dst[b * 32 + j + 16] = ((x[b].qs[j] >> 4) | (((qh >> (j + 16)) & 1) << 4)) * d + m;
    }
  }
}

}  // namespace strata::engine

// Q2_K and Q3_K: 256-value super-blocks with a scale per 16 values.
// Layout of a 128-value half h (both types): value 32*j + l (j = 0..3, l = 0..31) has its
// low 2 bits in bits 2j..2j+1 of qs[32*h + l], and its scale index is 8*h + 2*j + l/16.
//   Q2_K: value = d * (sc & 15) * q - dmin * (sc >> 4), q in 0..3.
//   Q3_K: value = d * (scale - 32) * (q - 4 * !high), high bit in bit 4*h + j of hmask[l].
#include <algorithm>
#include <cmath>
#include <cstring>

#include "engine/quant/fp16.h"
#include "engine/quant/quant_blocks.h"
#include "engine/quant/quantize.h"

namespace strata::engine {
namespace {

// The (qs byte, shift, scale index) of value e of a super-block.
struct LowBitsSlot {
  int byte;
  int shift;
  int group;
};
LowBitsSlot SlotOf(int e) {
  const int h = e / 128, j = (e % 128) / 32, l = e % 32;
  return {32 * h + l, 2 * j, 8 * h + 2 * j + l / 16};
}

}  // namespace

void QuantizeRowQ2_K(const float* src, int64_t n, void* dst) {
  auto* y = static_cast<BlockQ2_K*>(dst);
  for (int64_t b = 0; b < n / kQK_K; ++b) {
    const float* x = src + b * kQK_K;
    float scale[16], min[16], max_scale = 0, max_min = 0;
    for (int g = 0; g < 16; ++g) {
      float lo = x[16 * g], hi = x[16 * g];
      for (int l = 1; l < 16; ++l) {
        lo = std::min(lo, x[16 * g + l]);
        hi = std::max(hi, x[16 * g + l]);
      }
      lo = std::min(lo, 0.0f);
      scale[g] = (hi - lo) / 3.0f;
      min[g] = -lo;
      max_scale = std::max(max_scale, scale[g]);
      max_min = std::max(max_min, min[g]);
    }
    y[b].d = FloatToHalf(max_scale / 15.0f);
    y[b].dmin = FloatToHalf(max_min / 15.0f);
    const float d = HalfToFloat(y[b].d), dmin = HalfToFloat(y[b].dmin);
    float step[16], offset[16];
    for (int g = 0; g < 16; ++g) {
      const int ls = std::clamp(d ? RoundToInt(scale[g] / d) : 0, 0, 15);
      const int lm = std::clamp(dmin ? RoundToInt(min[g] / dmin) : 0, 0, 15);
      y[b].scales[g] = static_cast<uint8_t>(ls | (lm << 4));
      step[g] = d * ls;
      offset[g] = dmin * lm;
    }
    std::memset(y[b].qs, 0, sizeof(y[b].qs));
    for (int e = 0; e < kQK_K; ++e) {
      const LowBitsSlot s = SlotOf(e);
      const float inv = step[s.group] ? 1.0f / step[s.group] : 0.0f;
      const int q = std::clamp(RoundToInt((x[e] + offset[s.group]) * inv), 0, 3);
      y[b].qs[s.byte] = static_cast<uint8_t>(y[b].qs[s.byte] | (q << s.shift));
    }
  }
}

void DequantizeRowQ2_K(const void* src, int64_t n, float* dst) {
  const auto* x = static_cast<const BlockQ2_K*>(src);
  for (int64_t b = 0; b < n / kQK_K; ++b) {
    const float d = HalfToFloat(x[b].d), dmin = HalfToFloat(x[b].dmin);
    for (int e = 0; e < kQK_K; ++e) {
      const LowBitsSlot s = SlotOf(e);
      const uint8_t sc = x[b].scales[s.group];
      dst[b * kQK_K + e] = d * (sc & 0xF) * ((x[b].qs[s.byte] >> s.shift) & 3) - dmin * (sc >> 4);
    }
  }
}

void UnpackQ3KScales(const uint8_t* raw, int8_t* scales) {
  for (int i = 0; i < 16; ++i) {
    const int low4 = i < 8 ? raw[i] & 0xF : raw[i - 8] >> 4;
    const int high2 = (raw[8 + i % 4] >> (2 * (i / 4))) & 3;
    scales[i] = static_cast<int8_t>((low4 | (high2 << 4)) - 32);
  }
}

void QuantizeRowQ3_K(const float* src, int64_t n, void* dst) {
  auto* y = static_cast<BlockQ3_K*>(dst);
  for (int64_t b = 0; b < n / kQK_K; ++b) {
    const float* x = src + b * kQK_K;
    float scale[16], max_scale = 0;
    for (int g = 0; g < 16; ++g) {
      float amax = 0;
      for (int l = 0; l < 16; ++l) amax = std::max(amax, std::fabs(x[16 * g + l]));
      scale[g] = amax / 4.0f;  // quants span -4..3
      max_scale = std::max(max_scale, scale[g]);
    }
    y[b].d = FloatToHalf(max_scale / 31.0f);
    const float d = HalfToFloat(y[b].d);
    int sc[16];
    std::memset(y[b].scales, 0, sizeof(y[b].scales));
    for (int g = 0; g < 16; ++g) {
      sc[g] = std::clamp(d ? RoundToInt(scale[g] / d) : 0, -32, 31);
      const int stored = sc[g] + 32;  // 6 bits
      if (g < 8) {
        y[b].scales[g] = static_cast<uint8_t>(y[b].scales[g] | (stored & 0xF));
      } else {
        y[b].scales[g - 8] = static_cast<uint8_t>(y[b].scales[g - 8] | ((stored & 0xF) << 4));
      }
      y[b].scales[8 + g % 4] =
          static_cast<uint8_t>(y[b].scales[8 + g % 4] | ((stored >> 4) << (2 * (g / 4))));
    }
    std::memset(y[b].qs, 0, sizeof(y[b].qs));
    std::memset(y[b].hmask, 0, sizeof(y[b].hmask));
    for (int e = 0; e < kQK_K; ++e) {
      const LowBitsSlot s = SlotOf(e);
      const float step = d * static_cast<float>(sc[s.group]);
      const int q = std::clamp(step ? RoundToInt(x[e] / step) : 0, -4, 3) + 4;  // 0..7
      y[b].qs[s.byte] = static_cast<uint8_t>(y[b].qs[s.byte] | ((q & 3) << s.shift));
      if (q & 4) y[b].hmask[e % 32] = static_cast<uint8_t>(y[b].hmask[e % 32] | (1u << (e / 32)));
    }
  }
}

void DequantizeRowQ3_K(const void* src, int64_t n, float* dst) {
  const auto* x = static_cast<const BlockQ3_K*>(src);
  for (int64_t b = 0; b < n / kQK_K; ++b) {
    const float d = HalfToFloat(x[b].d);
    int8_t scales[16];
    UnpackQ3KScales(x[b].scales, scales);
    for (int e = 0; e < kQK_K; ++e) {
      const LowBitsSlot s = SlotOf(e);
      const int low = (x[b].qs[s.byte] >> s.shift) & 3;
      const int high = (x[b].hmask[e % 32] >> (e / 32)) & 1;
      dst[b * kQK_K + e] = d * scales[s.group] * static_cast<float>(low - (high ? 0 : 4));
    }
  }
}

}  // namespace strata::engine

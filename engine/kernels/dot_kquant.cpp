// K-quant weight rows (Q2_K..Q6_K) against 8-bit super-block activations. For Q4_K and
// Q5_K: sum = d*da * sum_j scale_j * (q . q8)_j  -  dmin*da * sum_j min_j * sum(q8)_j
// over the eight 32-value sub-blocks j of each 256-value super-block.
#include <cstring>

#include "engine/kernels/kernels.h"
#include "engine/kernels/simd_avx2.h"
#include "engine/quant/fp16.h"
#include "engine/quant/quant_blocks.h"
#include "engine/quant/quantize.h"

namespace strata::engine::kernels {
namespace {

using storage::GgmlType;

void UnpackScalesMins(const uint8_t* q, uint8_t* scales, uint8_t* mins) {
  for (int j = 0; j < 8; ++j) UnpackScaleMin(j, q, &scales[j], &mins[j]);
}

// sum_j min_j * (sum of the activation's 32 values of sub-block j), via its per-16 sums.
int MinsDotSums(const uint8_t* mins, const int16_t* bsums) {
  int summ = 0;
  for (int j = 0; j < 8; ++j) summ += mins[j] * (bsums[2 * j] + bsums[2 * j + 1]);
  return summ;
}

// UnpackScalesMins four values at a time in 32-bit words, for the SIMD kernels (same
// values): scales and mins 0-3 are the low 6 bits of bytes 0-3 and 4-7; 4-7 are the low
// and high nibbles of bytes 8-11 with their top two bits from the top of bytes 0-3
// (scales) and 4-7 (mins).
void UnpackScalesMinsWords(const uint8_t* q, uint8_t* scales, uint8_t* mins) {
  uint32_t w[3];
  std::memcpy(w, q, sizeof(w));
  const uint32_t low6 = 0x3f3f3f3f, nibble = 0x0f0f0f0f, top2 = 0x03030303;
  const uint32_t s_lo = w[0] & low6, m_lo = w[1] & low6;
  const uint32_t s_hi = (w[2] & nibble) | (((w[0] >> 6) & top2) << 4);
  const uint32_t m_hi = ((w[2] >> 4) & nibble) | (((w[1] >> 6) & top2) << 4);
  std::memcpy(scales, &s_lo, 4);
  std::memcpy(scales + 4, &s_hi, 4);
  std::memcpy(mins, &m_lo, 4);
  std::memcpy(mins + 4, &m_hi, 4);
}

// MinsDotSums with SSE: pairs of per-16 sums (|sum| <= 4064 fits int16), then int16
// products summed into int32: the same exact integer.
STRATA_AVX2 int MinsDotSumsSse(const uint8_t* mins, const int16_t* bsums) {
  const __m128i pairs =
      _mm_hadd_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(bsums)),
                     _mm_loadu_si128(reinterpret_cast<const __m128i*>(bsums + 8)));
  const __m128i m = _mm_cvtepu8_epi16(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(mins)));
  return avx2::HorizontalSumEpi32(_mm256_zextsi128_si256(_mm_madd_epi16(m, pairs)));
}

// Q4_K and Q5_K: the exact integer sums per sub-block, then the float scales.
template <typename Block>
float DotScaleMinScalar(int64_t n, const void* w, const void* a) {
  const auto* x = static_cast<const Block*>(w);
  const auto* y = static_cast<const ActQ8KBlock*>(a);
  float sum = 0;
  for (int64_t b = 0; b < n / 256; ++b) {
    uint8_t scales[8], mins[8];
    UnpackScalesMins(x[b].scales, scales, mins);
    int sumi = 0;
    for (int j = 0; j < 8; ++j) {
      int isum = 0;
      for (int l = 0; l < 32; ++l) isum += SubBlockQuant(x[b], j, l) * y[b].qs[32 * j + l];
      sumi += scales[j] * isum;
    }
    const int summ = MinsDotSums(mins, y[b].bsums);
    sum += HalfToFloat(x[b].d) * y[b].d * static_cast<float>(sumi) -
           HalfToFloat(x[b].dmin) * y[b].d * static_cast<float>(summ);
  }
  return sum;
}

STRATA_AVX2 float DotQ4_KAvx2(int64_t n, const void* w, const void* a) {
  const auto* x = static_cast<const BlockQ4_K*>(w);
  const auto* y = static_cast<const ActQ8KBlock*>(a);
  const __m256i low_mask = _mm256_set1_epi8(0x0F);
  __m256 acc = _mm256_setzero_ps();
  float mins_total = 0;
  for (int64_t b = 0; b < n / 256; ++b) {
    uint8_t scales[8], mins[8];
    UnpackScalesMinsWords(x[b].scales, scales, mins);
    const int summ = MinsDotSumsSse(mins, y[b].bsums);
    __m256i sumi = _mm256_setzero_si256();
    for (int pair = 0; pair < 4; ++pair) {
      const __m256i q4 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x[b].qs + 32 * pair));
      const __m256i lo = _mm256_and_si256(q4, low_mask);
      const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(q4, 4), low_mask);
      const __m256i a_lo =
          _mm256_loadu_si256(reinterpret_cast<const __m256i*>(y[b].qs + 64 * pair));
      const __m256i a_hi =
          _mm256_loadu_si256(reinterpret_cast<const __m256i*>(y[b].qs + 64 * pair + 32));
      // q4 <= 15 and |q8| <= 127: the pairwise int16 sums cannot saturate.
      const __m256i p_lo =
          _mm256_madd_epi16(_mm256_maddubs_epi16(lo, a_lo), _mm256_set1_epi16(scales[2 * pair]));
      const __m256i p_hi = _mm256_madd_epi16(_mm256_maddubs_epi16(hi, a_hi),
                                             _mm256_set1_epi16(scales[2 * pair + 1]));
      sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(p_lo, p_hi));
    }
    const float d = _cvtsh_ss(x[b].d) * y[b].d;
    acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
    mins_total += _cvtsh_ss(x[b].dmin) * y[b].d * static_cast<float>(summ);
  }
  return avx2::HorizontalSum(acc) - mins_total;
}

// Four activations per weight row, with the same per-activation operations as
// DotQ4_KAvx2 (identical results) and the nibbles and scales unpacked once.
STRATA_AVX2 void Dot4Q4_KAvx2(int64_t n, const void* w, const void* const* a, float* out) {
  const auto* x = static_cast<const BlockQ4_K*>(w);
  const ActQ8KBlock* y[4];
  for (int j = 0; j < 4; ++j) y[j] = static_cast<const ActQ8KBlock*>(a[j]);
  const __m256i low_mask = _mm256_set1_epi8(0x0F);
  __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(),
                   _mm256_setzero_ps()};
  float mins_total[4] = {0, 0, 0, 0};
  for (int64_t b = 0; b < n / 256; ++b) {
    uint8_t scales[8], mins[8];
    UnpackScalesMinsWords(x[b].scales, scales, mins);
    __m256i lo[4], hi[4];
    for (int pair = 0; pair < 4; ++pair) {
      const __m256i q4 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x[b].qs + 32 * pair));
      lo[pair] = _mm256_and_si256(q4, low_mask);
      hi[pair] = _mm256_and_si256(_mm256_srli_epi16(q4, 4), low_mask);
    }
    const float dx = _cvtsh_ss(x[b].d), dminx = _cvtsh_ss(x[b].dmin);
    for (int j = 0; j < 4; ++j) {
      const int summ = MinsDotSumsSse(mins, y[j][b].bsums);
      __m256i sumi = _mm256_setzero_si256();
      for (int pair = 0; pair < 4; ++pair) {
        const __m256i a_lo =
            _mm256_loadu_si256(reinterpret_cast<const __m256i*>(y[j][b].qs + 64 * pair));
        const __m256i a_hi =
            _mm256_loadu_si256(reinterpret_cast<const __m256i*>(y[j][b].qs + 64 * pair + 32));
        const __m256i p_lo = _mm256_madd_epi16(_mm256_maddubs_epi16(lo[pair], a_lo),
                                               _mm256_set1_epi16(scales[2 * pair]));
        const __m256i p_hi = _mm256_madd_epi16(_mm256_maddubs_epi16(hi[pair], a_hi),
                                               _mm256_set1_epi16(scales[2 * pair + 1]));
        sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(p_lo, p_hi));
      }
      acc[j] = _mm256_fmadd_ps(_mm256_set1_ps(dx * y[j][b].d), _mm256_cvtepi32_ps(sumi), acc[j]);
      mins_total[j] += dminx * y[j][b].d * static_cast<float>(summ);
    }
  }
  for (int j = 0; j < 4; ++j) out[j] = avx2::HorizontalSum(acc[j]) - mins_total[j];
}

// Q6_K: sum = d*da * sum_g scale_g * sum_l (q - 32) * a, with the -32 folded in through
// the activation's per-16 sums.
float DotQ6_KScalar(int64_t n, const void* w, const void* a) {
  const auto* x = static_cast<const BlockQ6_K*>(w);
  const auto* y = static_cast<const ActQ8KBlock*>(a);
  float sum = 0;
  for (int64_t b = 0; b < n / 256; ++b) {
    int sumi = 0;
    for (int half = 0; half < 2; ++half) {
      const uint8_t* ql = x[b].ql + 64 * half;
      const uint8_t* qh = x[b].qh + 32 * half;
      const int8_t* aq = y[b].qs + 128 * half;
      int group[8] = {0, 0, 0, 0, 0, 0, 0, 0};  // per 16 values of this half
      for (int l = 0; l < 32; ++l) {
        const int is = l / 16;
        group[is + 0] += (((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32) * aq[l];
        group[is + 2] += (((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32) * aq[l + 32];
        group[is + 4] += (((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32) * aq[l + 64];
        group[is + 6] += (((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32) * aq[l + 96];
      }
      for (int g = 0; g < 8; ++g) sumi += x[b].scales[8 * half + g] * group[g];
    }
    sum += HalfToFloat(x[b].d) * y[b].d * static_cast<float>(sumi);
  }
  return sum;
}

// The AVX2 dots share one step: 32 unsigned quants q (<= 63) times 32 activation bytes,
// pair sums weighted by `sc` (16 int16: one per pair sum).
STRATA_AVX2 inline __m256i GroupScaledDot(__m256i q, const int8_t* act, __m256i sc) {
  const __m256i p16 =
      _mm256_maddubs_epi16(q, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(act)));
  return _mm256_madd_epi16(p16, sc);
}

// The weights for the 32 quants of 16-value groups g and g + 1, from 16 signed byte
// scales (one per group): scale g over the first eight pair sums, g + 1 over the rest.
STRATA_AVX2 inline __m256i PairScales(__m128i scales8, int g) {
  const __m128i pick = _mm_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);
  return _mm256_cvtepi8_epi16(
      _mm_shuffle_epi8(scales8, _mm_add_epi8(pick, _mm_set1_epi8(static_cast<char>(g)))));
}

// sum_g scale_g * bsums[g] over the 16 groups: int16 products summed to int32 (|scale|
// <= 128 and |group sum| <= 2032).
STRATA_AVX2 inline int ScalesDotSums(__m128i scales8, const int16_t* bsums) {
  return avx2::HorizontalSumEpi32(_mm256_madd_epi16(
      _mm256_cvtepi8_epi16(scales8), _mm256_loadu_si256(reinterpret_cast<const __m256i*>(bsums))));
}

STRATA_AVX2 float DotQ6_KAvx2(int64_t n, const void* w, const void* a) {
  const auto* x = static_cast<const BlockQ6_K*>(w);
  const auto* y = static_cast<const ActQ8KBlock*>(a);
  const __m256i m4 = _mm256_set1_epi8(0x0F), m2 = _mm256_set1_epi8(3);
  __m256 acc = _mm256_setzero_ps();
  for (int64_t b = 0; b < n / 256; ++b) {
    // The -32 offset: sum_g scale_g * 32 * (sum of the activation's group g), in int16
    // products summed to int32 (|scale| <= 128, |group sum| <= 2032).
    const __m128i scales8 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(x[b].scales));
    const int offset = ScalesDotSums(scales8, y[b].bsums);
    __m256i sumi = _mm256_setzero_si256();
    for (int half = 0; half < 2; ++half) {
      const uint8_t* ql = x[b].ql + 64 * half;
      const __m256i qh = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x[b].qh + 32 * half));
      const __m256i ql0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ql));
      const __m256i ql1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ql + 32));
      // q in 0..63 for the four quarters (32 values each) of this half.
      const __m256i q[4] = {
          _mm256_or_si256(_mm256_and_si256(ql0, m4),
                          _mm256_slli_epi16(_mm256_and_si256(qh, m2), 4)),
          _mm256_or_si256(_mm256_and_si256(ql1, m4),
                          _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2), m2), 4)),
          _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), m4),
                          _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 4), m2), 4)),
          _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), m4),
                          _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 6), m2), 4)),
      };
      for (int k = 0; k < 4; ++k) {
        const __m256i aq =
            _mm256_loadu_si256(reinterpret_cast<const __m256i*>(y[b].qs + 128 * half + 32 * k));
        // q <= 63 and |a| <= 127: pair sums stay below 2^15.
        const __m256i p16 = _mm256_maddubs_epi16(q[k], aq);
        // The two 16-value groups of this quarter, g and g + 1: their scales, each
        // repeated over the eight pair sums it weights.
        sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(p16, PairScales(scales8, 8 * half + 2 * k)));
      }
    }
    const float d = _cvtsh_ss(x[b].d) * y[b].d;
    const __m256i total =
        _mm256_sub_epi32(sumi, _mm256_setr_epi32(32 * offset, 0, 0, 0, 0, 0, 0, 0));
    acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(total), acc);
  }
  return avx2::HorizontalSum(acc);
}

// Q2_K and Q3_K (layouts in engine/quant/quant_k_low.cpp): per super-block, the
// exact integer sums per 16-value group, then the float scales.
float DotQ2_KScalar(int64_t n, const void* w, const void* a) {
  const auto* x = static_cast<const BlockQ2_K*>(w);
  const auto* y = static_cast<const ActQ8KBlock*>(a);
  float sum = 0;
  for (int64_t b = 0; b < n / 256; ++b) {
    int sumi = 0, summ = 0;
    for (int g = 0; g < 16; ++g) {
      const int h = g / 8, j = (g % 8) / 2, l0 = (g % 2) * 16;
      int isum = 0;
      for (int l = l0; l < l0 + 16; ++l)
        isum += ((x[b].qs[32 * h + l] >> (2 * j)) & 3) * y[b].qs[128 * h + 32 * j + l];
      sumi += (x[b].scales[g] & 0xF) * isum;
      summ += (x[b].scales[g] >> 4) * y[b].bsums[g];
    }
    sum += HalfToFloat(x[b].d) * y[b].d * static_cast<float>(sumi) -
           HalfToFloat(x[b].dmin) * y[b].d * static_cast<float>(summ);
  }
  return sum;
}

float DotQ3_KScalar(int64_t n, const void* w, const void* a) {
  const auto* x = static_cast<const BlockQ3_K*>(w);
  const auto* y = static_cast<const ActQ8KBlock*>(a);
  float sum = 0;
  for (int64_t b = 0; b < n / 256; ++b) {
    int8_t scales[16];
    UnpackQ3KScales(x[b].scales, scales);
    int sumi = 0;
    for (int g = 0; g < 16; ++g) {
      const int h = g / 8, j = (g % 8) / 2, l0 = (g % 2) * 16;
      int isum = 0;
      for (int l = l0; l < l0 + 16; ++l) {
        const int low = (x[b].qs[32 * h + l] >> (2 * j)) & 3;
        const int high = (x[b].hmask[l] >> (4 * h + j)) & 1;
        isum += (low - (high ? 0 : 4)) * y[b].qs[128 * h + 32 * j + l];
      }
      sumi += scales[g] * isum;
    }
    sum += HalfToFloat(x[b].d) * y[b].d * static_cast<float>(sumi);
  }
  return sum;
}

STRATA_AVX2 float DotQ2_KAvx2(int64_t n, const void* w, const void* a) {
  const auto* x = static_cast<const BlockQ2_K*>(w);
  const auto* y = static_cast<const ActQ8KBlock*>(a);
  const __m256i m3 = _mm256_set1_epi8(3);
  __m256 acc = _mm256_setzero_ps();
  float mins_total = 0;
  for (int64_t b = 0; b < n / 256; ++b) {
    // Each byte: scale in the low nibble, min in the high one.
    const __m128i packed = _mm_loadu_si128(reinterpret_cast<const __m128i*>(x[b].scales));
    const __m128i scales8 = _mm_and_si128(packed, _mm_set1_epi8(0x0F));
    const int summ =
        ScalesDotSums(_mm_and_si128(_mm_srli_epi16(packed, 4), _mm_set1_epi8(0x0F)), y[b].bsums);
    __m256i sumi = _mm256_setzero_si256();
    for (int h = 0; h < 2; ++h) {
      const __m256i qs = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x[b].qs + 32 * h));
      for (int j = 0; j < 4; ++j) {
        const __m256i q = _mm256_and_si256(_mm256_srli_epi16(qs, 2 * j), m3);
        sumi = _mm256_add_epi32(
            sumi, GroupScaledDot(q, y[b].qs + 128 * h + 32 * j, PairScales(scales8, 8 * h + 2 * j)));
      }
    }
    acc =
        _mm256_fmadd_ps(_mm256_set1_ps(_cvtsh_ss(x[b].d) * y[b].d), _mm256_cvtepi32_ps(sumi), acc);
    mins_total += _cvtsh_ss(x[b].dmin) * y[b].d * static_cast<float>(summ);
  }
  return avx2::HorizontalSum(acc) - mins_total;
}

// UnpackQ3KScales in 64-bit words (same values), as a vector: scale i's low nibble is
// the low nibble of byte i (i < 8) or the high nibble of byte i - 8, its top two bits
// are bits 2 * (i / 4) of byte 8 + i % 4, and it is stored + 32.
STRATA_AVX2 inline __m128i Q3KScales(const uint8_t* raw) {
  uint64_t a;
  uint32_t w;
  std::memcpy(&a, raw, sizeof(a));
  std::memcpy(&w, raw + 8, sizeof(w));
  const uint64_t nibbles = 0x0F0F0F0F0F0F0F0Full;
  const uint32_t two = 0x03030303;
  const uint64_t top_lo = uint64_t{w & two} | uint64_t{(w >> 2) & two} << 32;
  const uint64_t top_hi = uint64_t{(w >> 4) & two} | uint64_t{(w >> 6) & two} << 32;
  const uint64_t lo = (a & nibbles) | top_lo << 4;
  const uint64_t hi = ((a >> 4) & nibbles) | top_hi << 4;
  return _mm_sub_epi8(_mm_set_epi64x(static_cast<int64_t>(hi), static_cast<int64_t>(lo)),
                      _mm_set1_epi8(32));
}

STRATA_AVX2 float DotQ3_KAvx2(int64_t n, const void* w, const void* a) {
  const auto* x = static_cast<const BlockQ3_K*>(w);
  const auto* y = static_cast<const ActQ8KBlock*>(a);
  const __m256i m3 = _mm256_set1_epi8(3), m1 = _mm256_set1_epi8(1);
  __m256 acc = _mm256_setzero_ps();
  for (int64_t b = 0; b < n / 256; ++b) {
    const __m128i scales8 = Q3KScales(x[b].scales);
    // Quants are q - 4 with q = low | high << 2 in 0..7: sum scale * q * a, then
    // subtract 4 * scale * (sum of a) per group.
    const int offset = ScalesDotSums(scales8, y[b].bsums);
    const __m256i hm = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x[b].hmask));
    __m256i sumi = _mm256_setzero_si256();
    for (int h = 0; h < 2; ++h) {
      const __m256i qs = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x[b].qs + 32 * h));
      for (int j = 0; j < 4; ++j) {
        const __m256i low = _mm256_and_si256(_mm256_srli_epi16(qs, 2 * j), m3);
        const __m256i high =
            _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hm, 4 * h + j), m1), 2);
        sumi = _mm256_add_epi32(sumi, GroupScaledDot(_mm256_or_si256(low, high),
                                                     y[b].qs + 128 * h + 32 * j,
                                                     PairScales(scales8, 8 * h + 2 * j)));
      }
    }
    sumi = _mm256_sub_epi32(sumi, _mm256_setr_epi32(4 * offset, 0, 0, 0, 0, 0, 0, 0));
    acc =
        _mm256_fmadd_ps(_mm256_set1_ps(_cvtsh_ss(x[b].d) * y[b].d), _mm256_cvtepi32_ps(sumi), acc);
  }
  return avx2::HorizontalSum(acc);
}

STRATA_AVX2 float DotQ5_KAvx2(int64_t n, const void* w, const void* a) {
  const auto* x = static_cast<const BlockQ5_K*>(w);
  const auto* y = static_cast<const ActQ8KBlock*>(a);
  const __m256i m4 = _mm256_set1_epi8(0x0F), m1 = _mm256_set1_epi8(1);
  __m256 acc = _mm256_setzero_ps();
  float mins_total = 0;
  for (int64_t b = 0; b < n / 256; ++b) {
    uint8_t scales[8], mins[8];
    UnpackScalesMinsWords(x[b].scales, scales, mins);
    const int summ = MinsDotSumsSse(mins, y[b].bsums);
    const __m256i qh = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x[b].qh));
    __m256i sumi = _mm256_setzero_si256();
    for (int pair = 0; pair < 4; ++pair) {
      const __m256i q4 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x[b].qs + 32 * pair));
      const __m256i lo = _mm256_or_si256(
          _mm256_and_si256(q4, m4),
          _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2 * pair), m1), 4));
      const __m256i hi = _mm256_or_si256(
          _mm256_and_si256(_mm256_srli_epi16(q4, 4), m4),
          _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2 * pair + 1), m1), 4));
      sumi = _mm256_add_epi32(sumi, GroupScaledDot(lo, y[b].qs + 64 * pair,
                                                   _mm256_set1_epi16(scales[2 * pair])));
      sumi = _mm256_add_epi32(sumi, GroupScaledDot(hi, y[b].qs + 64 * pair + 32,
                                                   _mm256_set1_epi16(scales[2 * pair + 1])));
    }
    acc =
        _mm256_fmadd_ps(_mm256_set1_ps(_cvtsh_ss(x[b].d) * y[b].d), _mm256_cvtepi32_ps(sumi), acc);
    mins_total += _cvtsh_ss(x[b].dmin) * y[b].d * static_cast<float>(summ);
  }
  return avx2::HorizontalSum(acc) - mins_total;
}

}  // namespace

Dot4Fn KQuantDot4(GgmlType type, Isa isa) {
  if (isa == Isa::kAvx2 && type == GgmlType::kQ4_K) return Dot4Q4_KAvx2;
  return nullptr;
}

DotFn KQuantDot(GgmlType type, Isa isa) {
  const bool simd = isa == Isa::kAvx2;
  switch (type) {
    case GgmlType::kQ4_K:
      return simd ? DotQ4_KAvx2 : DotScaleMinScalar<BlockQ4_K>;
    case GgmlType::kQ5_K:
      return simd ? DotQ5_KAvx2 : DotScaleMinScalar<BlockQ5_K>;
    case GgmlType::kQ2_K:
      return simd ? DotQ2_KAvx2 : DotQ2_KScalar;
    case GgmlType::kQ3_K:
      return simd ? DotQ3_KAvx2 : DotQ3_KScalar;
    case GgmlType::kQ6_K:
      return simd ? DotQ6_KAvx2 : DotQ6_KScalar;
    default:
      return nullptr;
  }
}

}  // namespace strata::engine::kernels

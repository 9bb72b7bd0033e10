// Q5_0, Q8_0 (one f16 scale per 32 values) and Q4_1, Q5_1 (scale and min) weight
// rows against 8-bit activation blocks: the integer products of a block are summed
// exactly, then scaled. Q4_0 has its own file (dot_q4_0.cpp): its kernels work on eight
// blocks or eight rows at a time.
#include <type_traits>

#include "engine/kernels/kernels.h"
#include "engine/kernels/simd_avx2.h"
#include "engine/quant/fp16.h"
#include "engine/quant/quant_blocks.h"

namespace strata::engine::kernels {
namespace {

using storage::GgmlType;

float DotQ5_0Scalar(int64_t n, const void* w, const void* a) {
  const auto* x = static_cast<const BlockQ5_0*>(w);
  const auto* y = static_cast<const ActQ8Block*>(a);
  float sum = 0;
  for (int64_t b = 0; b < n / 32; ++b) {
    uint32_t qh;
    std::memcpy(&qh, x[b].qh, sizeof(qh));
    int isum = 0;
    for (int j = 0; j < 16; ++j) {
      const int lo = ((x[b].qs[j] & 0x0F) | (((qh >> j) & 1) << 4)) - 16;
      const int hi = ((x[b].qs[j] >> 4) | (((qh >> (j + 16)) & 1) << 4)) - 16;
      isum += lo * y[b].qs[j] + hi * y[b].qs[j + 16];
    }
    sum += HalfToFloat(x[b].d) * y[b].d * static_cast<float>(isum);
  }
  return sum;
}

float DotQ8_0Scalar(int64_t n, const void* w, const void* a) {
  const auto* x = static_cast<const BlockQ8_0*>(w);
  const auto* y = static_cast<const ActQ8Block*>(a);
  float sum = 0;
  for (int64_t b = 0; b < n / 32; ++b) {
    int isum = 0;
    for (int j = 0; j < 32; ++j) isum += x[b].qs[j] * y[b].qs[j];
    sum += HalfToFloat(x[b].d) * y[b].d * static_cast<float>(isum);
  }
  return sum;
}

// Q4_1 and Q5_1 (value = d*q + m): sum = d*da*sum(q*aq) + m*da*sum(aq).
float DotQ4_1Scalar(int64_t n, const void* w, const void* a) {
  const auto* x = static_cast<const BlockQ4_1*>(w);
  const auto* y = static_cast<const ActQ8Block*>(a);
  float sum = 0;
  for (int64_t b = 0; b < n / 32; ++b) {
    int isum = 0, asum = 0;
    for (int j = 0; j < 16; ++j) {
      isum += (x[b].qs[j] & 0x0F) * y[b].qs[j] + (x[b].qs[j] >> 4) * y[b].qs[j + 16];
      asum += y[b].qs[j] + y[b].qs[j + 16];
    }
    sum += HalfToFloat(x[b].d) * y[b].d * static_cast<float>(isum) +
           HalfToFloat(x[b].m) * y[b].d * static_cast<float>(asum);
  }
  return sum;
}

float DotQ5_1Scalar(int64_t n, const void* w, const void* a) {
  const auto* x = static_cast<const BlockQ5_1*>(w);
  const auto* y = static_cast<const ActQ8Block*>(a);
  float sum = 0;
  for (int64_t b = 0; b < n / 32; ++b) {
    uint32_t qh;
    std::memcpy(&qh, x[b].qh, sizeof(qh));
    int isum = 0, asum = 0;
    for (int j = 0; j < 16; ++j) {
      const int lo = (x[b].qs[j] & 0x0F) | (((qh >> j) & 1) << 4);
      const int hi = (x[b].qs[j] >> 4) | (((qh >> (j + 16)) & 1) << 4);
      isum += lo * y[b].qs[j] + hi * y[b].qs[j + 16];
      asum += y[b].qs[j] + y[b].qs[j + 16];
    }
    sum += HalfToFloat(x[b].d) * y[b].d * static_cast<float>(isum) +
           HalfToFloat(x[b].m) * y[b].d * static_cast<float>(asum);
  }
  return sum;
}

// One __m256 accumulator: per block, the exact integer dot (8 lanes of int32) is
// converted to float and fused-multiply-added with the block's combined scale.
STRATA_AVX2 float DotQ5_0Avx2(int64_t n, const void* w, const void* a) {
  const auto* x = static_cast<const BlockQ5_0*>(w);
  const auto* y = static_cast<const ActQ8Block*>(a);
  __m256 acc = _mm256_setzero_ps();
  for (int64_t b = 0; b < n / 32; ++b) {
    const __m256 d = _mm256_set1_ps(_cvtsh_ss(x[b].d) * y[b].d);
    __m256i qx = avx2::BytesFromNibbles32(x[b].qs);
    // value = (nibble | bit << 4) - 16: where the fifth bit is clear, set the byte's
    // high nibble to 0xF, which is exactly nibble - 16 as a signed byte.
    const __m256i high = _mm256_andnot_si256(avx2::BytesFromBits32(x[b].qh),
                                             _mm256_set1_epi8(static_cast<char>(0xF0)));
    qx = _mm256_or_si256(qx, high);
    const __m256i qy = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(y[b].qs));
    acc = _mm256_fmadd_ps(d, avx2::MulSumSignedBytes(qx, qy), acc);
  }
  return avx2::HorizontalSum(acc);
}

// Q4_1 and Q5_1: the unsigned codes meet the activation bytes directly; the min term
// needs the block's activation sum, taken with the same instruction against ones.
template <bool kFiveBit>
STRATA_AVX2 float DotQx1Avx2(int64_t n, const void* w, const void* a) {
  using Block = std::conditional_t<kFiveBit, BlockQ5_1, BlockQ4_1>;
  const auto* x = static_cast<const Block*>(w);
  const auto* y = static_cast<const ActQ8Block*>(a);
  __m256 acc = _mm256_setzero_ps(), acc_min = _mm256_setzero_ps();
  const __m256i ones = _mm256_set1_epi8(1);
  for (int64_t b = 0; b < n / 32; ++b) {
    __m256i qx = avx2::BytesFromNibbles32(x[b].qs);
    if constexpr (kFiveBit) {
      qx = _mm256_or_si256(
          qx, _mm256_and_si256(avx2::BytesFromBits32(x[b].qh), _mm256_set1_epi8(0x10)));
    }
    const __m256i qy = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(y[b].qs));
    const __m256 d = _mm256_set1_ps(_cvtsh_ss(x[b].d) * y[b].d);
    const __m256 m = _mm256_set1_ps(_cvtsh_ss(x[b].m) * y[b].d);
    acc = _mm256_fmadd_ps(d, avx2::MulSumUnsignedSignedBytes(qx, qy), acc);
    acc_min = _mm256_fmadd_ps(m, avx2::MulSumUnsignedSignedBytes(ones, qy), acc_min);
  }
  return avx2::HorizontalSum(acc) + avx2::HorizontalSum(acc_min);
}

STRATA_AVX2 float DotQ8_0Avx2(int64_t n, const void* w, const void* a) {
  const auto* x = static_cast<const BlockQ8_0*>(w);
  const auto* y = static_cast<const ActQ8Block*>(a);
  __m256 acc = _mm256_setzero_ps();
  for (int64_t b = 0; b < n / 32; ++b) {
    const __m256 d = _mm256_set1_ps(_cvtsh_ss(x[b].d) * y[b].d);
    const __m256i qx = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x[b].qs));
    const __m256i qy = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(y[b].qs));
    acc = _mm256_fmadd_ps(d, avx2::MulSumSignedBytes(qx, qy), acc);
  }
  return avx2::HorizontalSum(acc);
}

// Four activations per weight row: the same per-activation operations as the single
// kernels above (so identical results), with the weight block unpacked once.
template <typename Unpack>
STRATA_AVX2 inline void Dot4Legacy(int64_t n, const void* const* a, float* out, Unpack unpack) {
  const ActQ8Block* y[4];
  for (int j = 0; j < 4; ++j) y[j] = static_cast<const ActQ8Block*>(a[j]);
  __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(),
                   _mm256_setzero_ps()};
  for (int64_t b = 0; b < n / 32; ++b) {
    float dw;
    const __m256i qx = unpack(b, &dw);
    const __m256i ax = _mm256_sign_epi8(qx, qx);
    for (int j = 0; j < 4; ++j) {
      const __m256 d = _mm256_set1_ps(dw * y[j][b].d);
      const __m256i qy = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(y[j][b].qs));
      const __m256i dot16 = _mm256_maddubs_epi16(ax, _mm256_sign_epi8(qy, qx));
      const __m256 dot = _mm256_cvtepi32_ps(_mm256_madd_epi16(dot16, _mm256_set1_epi16(1)));
      acc[j] = _mm256_fmadd_ps(d, dot, acc[j]);
    }
  }
  for (int j = 0; j < 4; ++j) out[j] = avx2::HorizontalSum(acc[j]);
}

STRATA_AVX2 void Dot4Q5_0Avx2(int64_t n, const void* w, const void* const* a, float* out) {
  const auto* x = static_cast<const BlockQ5_0*>(w);
  Dot4Legacy(n, a, out, [x](int64_t b, float* d) STRATA_AVX2 {
    *d = _cvtsh_ss(x[b].d);
    const __m256i high = _mm256_andnot_si256(avx2::BytesFromBits32(x[b].qh),
                                             _mm256_set1_epi8(static_cast<char>(0xF0)));
    return _mm256_or_si256(avx2::BytesFromNibbles32(x[b].qs), high);
  });
}

STRATA_AVX2 void Dot4Q8_0Avx2(int64_t n, const void* w, const void* const* a, float* out) {
  const auto* x = static_cast<const BlockQ8_0*>(w);
  Dot4Legacy(n, a, out, [x](int64_t b, float* d) STRATA_AVX2 {
    *d = _cvtsh_ss(x[b].d);
    return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x[b].qs));
  });
}

}  // namespace

Dot4Fn LegacyDot4(GgmlType type, Isa isa) {
  if (isa != Isa::kAvx2) return nullptr;
  switch (type) {
    case GgmlType::kQ5_0:
      return Dot4Q5_0Avx2;
    case GgmlType::kQ8_0:
      return Dot4Q8_0Avx2;
    default:
      return nullptr;
  }
}

DotFn LegacyDot(GgmlType type, Isa isa) {
  const bool simd = isa == Isa::kAvx2;
  switch (type) {
    case GgmlType::kQ4_0:
      return Q4_0Dot(isa);
    case GgmlType::kQ5_0:
      return simd ? DotQ5_0Avx2 : DotQ5_0Scalar;
    case GgmlType::kQ8_0:
      return simd ? DotQ8_0Avx2 : DotQ8_0Scalar;
    case GgmlType::kQ4_1:
      return simd ? DotQx1Avx2<false> : DotQ4_1Scalar;
    case GgmlType::kQ5_1:
      return simd ? DotQx1Avx2<true> : DotQ5_1Scalar;
    default:
      return nullptr;
  }
}

}  // namespace strata::engine::kernels

// F32, F16 and BF16 weight rows against f32 activations.
#include "engine/kernels/kernels.h"
#include "engine/kernels/simd_avx2.h"
#include "engine/quant/fp16.h"

namespace strata::engine::kernels {
namespace {

using storage::GgmlType;

float DotF32Scalar(int64_t n, const void* w, const void* a) {
  const auto* x = static_cast<const float*>(w);
  const auto* y = static_cast<const float*>(a);
  float sum = 0;
  for (int64_t i = 0; i < n; ++i) sum += x[i] * y[i];
  return sum;
}

float DotF16Scalar(int64_t n, const void* w, const void* a) {
  const auto* x = static_cast<const uint16_t*>(w);
  const auto* y = static_cast<const float*>(a);
  float sum = 0;
  for (int64_t i = 0; i < n; ++i) sum += HalfToFloat(x[i]) * y[i];
  return sum;
}

float DotBf16Scalar(int64_t n, const void* w, const void* a) {
  const auto* x = static_cast<const uint16_t*>(w);
  const auto* y = static_cast<const float*>(a);
  float sum = 0;
  for (int64_t i = 0; i < n; ++i) sum += Bf16ToFloat(x[i]) * y[i];
  return sum;
}

// The SIMD versions keep 4 accumulators of 8 lanes (to hide FMA latency) and finish
// with a scalar tail; n need not be a multiple of 32.
template <typename Load>
STRATA_AVX2 float DotAvx2(int64_t n, const float* y, Load load) {
  __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(),
                   _mm256_setzero_ps()};
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    for (int k = 0; k < 4; ++k) {
      acc[k] = _mm256_fmadd_ps(load(i + 8 * k), _mm256_loadu_ps(y + i + 8 * k), acc[k]);
    }
  }
  for (; i + 8 <= n; i += 8) acc[0] = _mm256_fmadd_ps(load(i), _mm256_loadu_ps(y + i), acc[0]);
  const __m256 total = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
  // REQUIRES: n is a multiple of 8 (callers handle the tail).
  return avx2::HorizontalSum(total);
}

STRATA_AVX2 float DotF32Avx2(int64_t n, const void* w, const void* a) {
  const auto* x = static_cast<const float*>(w);
  const auto* y = static_cast<const float*>(a);
  const int64_t n8 = n & ~int64_t{7};
  float sum = DotAvx2(n8, y, [x](int64_t i) STRATA_AVX2 { return _mm256_loadu_ps(x + i); });
  for (int64_t i = n8; i < n; ++i) sum += x[i] * y[i];
  return sum;
}

STRATA_AVX2 float DotF16Avx2(int64_t n, const void* w, const void* a) {
  const auto* x = static_cast<const uint16_t*>(w);
  const auto* y = static_cast<const float*>(a);
  const int64_t n8 = n & ~int64_t{7};
  float sum = DotAvx2(n8, y, [x](int64_t i) STRATA_AVX2 {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(x + i)));
  });
  for (int64_t i = n8; i < n; ++i) sum += HalfToFloat(x[i]) * y[i];
  return sum;
}

STRATA_AVX2 float DotBf16Avx2(int64_t n, const void* w, const void* a) {
  const auto* x = static_cast<const uint16_t*>(w);
  const auto* y = static_cast<const float*>(a);
  const int64_t n8 = n & ~int64_t{7};
  float sum = DotAvx2(n8, y, [x](int64_t i) STRATA_AVX2 {
    const __m256i wide =
        _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(x + i)));
    return _mm256_castsi256_ps(_mm256_slli_epi32(wide, 16));
  });
  for (int64_t i = n8; i < n; ++i) sum += Bf16ToFloat(x[i]) * y[i];
  return sum;
}

}  // namespace

DotFn FloatDot(GgmlType type, Isa isa) {
  const bool simd = isa == Isa::kAvx2;
  switch (type) {
    case GgmlType::kF32:
      return simd ? DotF32Avx2 : DotF32Scalar;
    case GgmlType::kF16:
      return simd ? DotF16Avx2 : DotF16Scalar;
    case GgmlType::kBF16:
      return simd ? DotBf16Avx2 : DotBf16Scalar;
    default:
      return nullptr;
  }
}

}  // namespace strata::engine::kernels

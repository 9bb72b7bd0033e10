#include "engine/kernels/vector_ops.h"

#include <cmath>

#include "engine/kernels/simd_avx2.h"
#include "engine/quant/fp16.h"

namespace strata::engine::kernels {
namespace {

STRATA_AVX2 void ConvertF16ToF32Avx2(const uint16_t* x, float* y, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    _mm256_storeu_ps(y + i,
                     _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(x + i))));
  }
  for (; i < n; ++i) y[i] = HalfToFloat(x[i]);
}

STRATA_AVX2 void AxpyAvx2(float a, const float* x, float* y, int64_t n) {
  const __m256 va = _mm256_set1_ps(a);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    _mm256_storeu_ps(y + i, _mm256_fmadd_ps(va, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
  }
  for (; i < n; ++i) y[i] += a * x[i];
}

}  // namespace

void ConvertF16ToF32(const uint16_t* x, float* y, int64_t n, Isa isa) {
  if (isa == Isa::kAvx2) return ConvertF16ToF32Avx2(x, y, n);
  for (int64_t i = 0; i < n; ++i) y[i] = HalfToFloat(x[i]);
}

void Axpy(float a, const float* x, float* y, int64_t n, Isa isa) {
  if (isa == Isa::kAvx2) return AxpyAvx2(a, x, y, n);
  for (int64_t i = 0; i < n; ++i) y[i] += a * x[i];
}

void RmsNorm(const float* x, const float* w, int64_t n, float eps, float* out) {
  float sum = 0;
  for (int64_t i = 0; i < n; ++i) sum += x[i] * x[i];
  const float scale = 1.0f / std::sqrt(sum / static_cast<float>(n) + eps);
  if (!w) {
    for (int64_t i = 0; i < n; ++i) out[i] = x[i] * scale;
    return;
  }
  for (int64_t i = 0; i < n; ++i) out[i] = x[i] * scale * w[i];
}

}  // namespace strata::engine::kernels

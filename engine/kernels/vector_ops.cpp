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

// M weight vectors against 16 columns of the rows per pass: two row loads and M
// broadcasts feed 2M fmas, with the accumulators in registers for the whole sum.
template <int M>
STRATA_AVX2 void WeightedRowSumsAvx2(const float* w, int64_t w_stride, RowSet rows, int64_t len,
                                     int64_t n, float* out, int64_t out_stride) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    __m256 acc[M][2];
    for (int j = 0; j < M; ++j) acc[j][0] = acc[j][1] = _mm256_setzero_ps();
    for (int64_t s = 0; s < len; ++s) {
      const float* r = rows[s] + i;
      const __m256 r0 = _mm256_loadu_ps(r), r1 = _mm256_loadu_ps(r + 8);
      for (int j = 0; j < M; ++j) {
        const __m256 b = _mm256_broadcast_ss(w + j * w_stride + s);
        acc[j][0] = _mm256_fmadd_ps(b, r0, acc[j][0]);
        acc[j][1] = _mm256_fmadd_ps(b, r1, acc[j][1]);
      }
    }
    for (int j = 0; j < M; ++j) {
      _mm256_storeu_ps(out + j * out_stride + i, acc[j][0]);
      _mm256_storeu_ps(out + j * out_stride + i + 8, acc[j][1]);
    }
  }
  for (; i + 8 <= n; i += 8) {
    __m256 acc[M];
    for (int j = 0; j < M; ++j) acc[j] = _mm256_setzero_ps();
    for (int64_t s = 0; s < len; ++s) {
      const __m256 r0 = _mm256_loadu_ps(rows[s] + i);
      for (int j = 0; j < M; ++j)
        acc[j] = _mm256_fmadd_ps(_mm256_broadcast_ss(w + j * w_stride + s), r0, acc[j]);
    }
    for (int j = 0; j < M; ++j) _mm256_storeu_ps(out + j * out_stride + i, acc[j]);
  }
  for (; i < n; ++i) {
    for (int j = 0; j < M; ++j) {
      float acc = 0;
      for (int64_t s = 0; s < len; ++s) acc = std::fma(w[j * w_stride + s], rows[s][i], acc);
      out[j * out_stride + i] = acc;
    }
  }
}

// One row's scores from its per-query accumulators: the lanes in a fixed order, then the
// columns past the last multiple of 8.
template <int M>
STRATA_AVX2 inline void FinishRowDots(const __m256* acc, const float* row, const float* q,
                                      int64_t q_stride, int64_t n8, int64_t n, float scale,
                                      float* out, int64_t out_stride) {
  for (int j = 0; j < M; ++j) {
    float sum = avx2::HorizontalSum(acc[j]);
    for (int64_t i = n8; i < n; ++i) sum = std::fma(row[i], q[j * q_stride + i], sum);
    out[j * out_stride] = sum * scale;
  }
}

// Two rows against M queries per step: two row loads and M query loads feed 2M fmas, and
// the 2M accumulators are independent chains. A lone last row does the same arithmetic.
template <int M>
STRATA_AVX2 void DotsWithRowsAvx2(const float* q, int64_t q_stride, RowSet rows, int64_t len,
                                  int64_t n, float scale, float* out, int64_t out_stride) {
  const int64_t n8 = n & ~int64_t{7};
  int64_t s = 0;
  for (; s + 2 <= len; s += 2) {
    const float* r0 = rows[s];
    const float* r1 = rows[s + 1];
    __m256 a0[M], a1[M];
    for (int j = 0; j < M; ++j) a0[j] = a1[j] = _mm256_setzero_ps();
    for (int64_t i = 0; i < n8; i += 8) {
      const __m256 x0 = _mm256_loadu_ps(r0 + i), x1 = _mm256_loadu_ps(r1 + i);
      for (int j = 0; j < M; ++j) {
        const __m256 y = _mm256_loadu_ps(q + j * q_stride + i);
        a0[j] = _mm256_fmadd_ps(x0, y, a0[j]);
        a1[j] = _mm256_fmadd_ps(x1, y, a1[j]);
      }
    }
    FinishRowDots<M>(a0, r0, q, q_stride, n8, n, scale, out + s, out_stride);
    FinishRowDots<M>(a1, r1, q, q_stride, n8, n, scale, out + s + 1, out_stride);
  }
  for (; s < len; ++s) {
    const float* r0 = rows[s];
    __m256 a0[M];
    for (int j = 0; j < M; ++j) a0[j] = _mm256_setzero_ps();
    for (int64_t i = 0; i < n8; i += 8) {
      const __m256 x0 = _mm256_loadu_ps(r0 + i);
      for (int j = 0; j < M; ++j)
        a0[j] = _mm256_fmadd_ps(x0, _mm256_loadu_ps(q + j * q_stride + i), a0[j]);
    }
    FinishRowDots<M>(a0, r0, q, q_stride, n8, n, scale, out + s, out_stride);
  }
}

}  // namespace

void ConvertF16ToF32(const uint16_t* x, float* y, int64_t n, Isa isa) {
  if (isa == Isa::kAvx2) return ConvertF16ToF32Avx2(x, y, n);
  for (int64_t i = 0; i < n; ++i) y[i] = HalfToFloat(x[i]);
}

void WeightedRowSums(const float* w, int64_t w_stride, int m, RowSet rows, int64_t len, int64_t n,
                     float* out, int64_t out_stride, Isa isa) {
  if (isa == Isa::kAvx2) {
    switch (m) {
      case 1:
        return WeightedRowSumsAvx2<1>(w, w_stride, rows, len, n, out, out_stride);
      case 2:
        return WeightedRowSumsAvx2<2>(w, w_stride, rows, len, n, out, out_stride);
      case 3:
        return WeightedRowSumsAvx2<3>(w, w_stride, rows, len, n, out, out_stride);
      default:
        return WeightedRowSumsAvx2<4>(w, w_stride, rows, len, n, out, out_stride);
    }
  }
  for (int j = 0; j < m; ++j) {
    for (int64_t i = 0; i < n; ++i) {
      float acc = 0;
      for (int64_t s = 0; s < len; ++s) acc += w[j * w_stride + s] * rows[s][i];
      out[j * out_stride + i] = acc;
    }
  }
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

void DotsWithRows(const float* q, int64_t q_stride, int m, RowSet rows, int64_t len, int64_t n,
                  float scale, float* out, int64_t out_stride, Isa isa) {
  if (isa == Isa::kAvx2) {
    switch (m) {
      case 1:
        return DotsWithRowsAvx2<1>(q, q_stride, rows, len, n, scale, out, out_stride);
      case 2:
        return DotsWithRowsAvx2<2>(q, q_stride, rows, len, n, scale, out, out_stride);
      case 3:
        return DotsWithRowsAvx2<3>(q, q_stride, rows, len, n, scale, out, out_stride);
      default:
        return DotsWithRowsAvx2<4>(q, q_stride, rows, len, n, scale, out, out_stride);
    }
  }
  for (int j = 0; j < m; ++j) {
    for (int64_t s = 0; s < len; ++s) {
      float sum = 0;
      for (int64_t i = 0; i < n; ++i) sum += rows[s][i] * q[j * q_stride + i];
      out[j * out_stride + s] = sum * scale;
    }
  }
}

}  // namespace strata::engine::kernels

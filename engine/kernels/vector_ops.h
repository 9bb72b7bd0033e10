// Small vector operations the attention inner loops need, scalar and AVX2 (F16C):
// f16 -> f32 row conversion, and scores and weighted sums of rows for several heads at
// once; and RMSNorm, plain scalar (its float summation order is part of the models'
// bit-exact results). Pure; thread-safe.
#pragma once

#include <cmath>
#include <cstdint>

#include "engine/kernels/kernels.h"

namespace strata::engine::kernels {

void ConvertF16ToF32(const uint16_t* x, float* y, int64_t n, Isa isa);
// The rows an attention kernel reads: evenly spaced (base + s * stride: a cache) or
// gathered (ptrs[s]: a ring buffer's window, selected entries).
struct RowSet {
  const float* base = nullptr;
  int64_t stride = 0;
  const float* const* ptrs = nullptr;
  const float* operator[](int64_t s) const { return ptrs ? ptrs[s] : base + s * stride; }
};

// SiLU, x * sigmoid(x): the activation of every SwiGLU and of Engram's conv.
inline float Silu(float x) { return x / (1.0f + std::exp(-x)); }

// Weighted sums of rows for m <= 4 weight vectors at once (attention's values for several
// heads, which share each load of a row):
//   out[j * out_stride + i] = sum over s < len of w[j * w_stride + s] * rows[s][i]
// for j < m, i < n. Each sum starts from zero and adds w * row in order of s (one fma each
// on AVX2).
void WeightedRowSums(const float* w, int64_t w_stride, int m, RowSet rows, int64_t len, int64_t n,
                     float* out, int64_t out_stride, Isa isa);
// Attention scores for m <= 4 queries at once (several heads, which share each load of a
// row):  out[j * out_stride + s] = scale * dot(rows[s], q[j * q_stride ..]) over n values,
// for j < m, s < len. A row's result does not depend on which other rows are in the
// call, so any split of the rows between threads gives the same bits.
void DotsWithRows(const float* q, int64_t q_stride, int m, RowSet rows, int64_t len, int64_t n,
                  float scale, float* out, int64_t out_stride, Isa isa);
// out = x * w / sqrt(mean(x^2) + eps); w null: unweighted. `out` may alias `x`.
void RmsNorm(const float* x, const float* w, int64_t n, float eps, float* out);

}  // namespace strata::engine::kernels

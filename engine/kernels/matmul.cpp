#include "engine/kernels/matmul.h"

#include <algorithm>

namespace strata::engine::kernels {
namespace {

// y[t * w.rows + r] for rows [begin, end) and every token, on the calling thread. The
// one place that picks a kernel, so MatVec, RowDots, MatMul and MatMulPair give the
// same bits for the same row and token.
void ProductRows(const WeightMatrix& w, int64_t begin, int64_t end, const uint8_t* act,
                 size_t stride, int64_t tokens, float* y, Isa isa) {
  if (const PanelMatMulFn panel = GetPanelMatMul(w.type, isa)) {
    panel(w, begin, end, act, stride, tokens, y);
    return;
  }
  const DotFn dot = GetDot(w.type, isa);
  const Dot4Fn dot4 = tokens >= 4 ? GetDot4(w.type, isa) : nullptr;
  // Blocks of rows x all tokens: a block of weight rows stays in L1/L2 while every
  // token's activation streams past it; four tokens share each unpacked block.
  constexpr int64_t kRowBlock = 16;
  for (int64_t r0 = begin; r0 < end; r0 += kRowBlock) {
    const int64_t r1 = std::min(end, r0 + kRowBlock);
    int64_t t = 0;
    if (dot4) {
      for (; t + 4 <= tokens; t += 4) {
        const void* a4[4];
        for (int j = 0; j < 4; ++j) a4[j] = act + static_cast<size_t>(t + j) * stride;
        float out4[4];
        for (int64_t r = r0; r < r1; ++r) {
          dot4(w.cols, w.row(r), a4, out4);
          for (int j = 0; j < 4; ++j) y[(t + j) * w.rows + r] = out4[j];
        }
      }
    }
    for (; t < tokens; ++t) {
      const uint8_t* a = act + static_cast<size_t>(t) * stride;
      float* out = y + t * w.rows;
      for (int64_t r = r0; r < r1; ++r) out[r] = dot(w.cols, w.row(r), a);
    }
  }
}

}  // namespace

const uint8_t* ActivationBuffer::Prepare(storage::GgmlType type, const float* x, int64_t n,
                                         int64_t t) {
  const ActivationFormat format = ActivationFormatFor(type);
  stride_ = ActivationBytes(format, n);
  if (bytes_.size() < stride_ * static_cast<size_t>(t))
    bytes_.resize(stride_ * static_cast<size_t>(t));
  for (int64_t i = 0; i < t; ++i)
    PrepareActivation(format, x + i * n, n, bytes_.data() + i * stride_);
  return bytes_.data();
}

void MatVec(const WeightMatrix& w, const float* x, float* y, ThreadPool& pool, Isa isa,
            ActivationBuffer& scratch) {
  MatMul(w, x, 1, y, pool, isa, scratch);
}

void RowDots(const WeightMatrix& w, const float* x, float* y, Isa isa,
             ActivationBuffer& scratch) {
  const uint8_t* act = scratch.Prepare(w.type, x, w.cols);
  ProductRows(w, 0, w.rows, act, scratch.stride(), 1, y, isa);
}

void MatMul(const WeightMatrix& w, const float* x, int64_t tokens, float* y, ThreadPool& pool,
            Isa isa, ActivationBuffer& scratch) {
  const uint8_t* act = scratch.Prepare(w.type, x, w.cols, tokens);
  const size_t stride = scratch.stride();
  pool.ParallelFor(
      w.rows,
      [&](int64_t begin, int64_t end) {
        ProductRows(w, begin, end, act, stride, tokens, y, isa);
      },
      16);
}

void MatMulPair(const WeightMatrix& a, const WeightMatrix& b, const float* x, int64_t tokens,
                float* ya, float* yb, ThreadPool& pool, Isa isa, ActivationBuffer& scratch) {
  if (a.type != b.type || a.cols != b.cols) {  // nothing to share
    MatMul(a, x, tokens, ya, pool, isa, scratch);
    MatMul(b, x, tokens, yb, pool, isa, scratch);
    return;
  }
  const uint8_t* act = scratch.Prepare(a.type, x, a.cols, tokens);
  const size_t stride = scratch.stride();
  pool.ParallelFor(
      a.rows + b.rows,
      [&](int64_t begin, int64_t end) {
        if (begin < a.rows) ProductRows(a, begin, std::min(end, a.rows), act, stride, tokens, ya, isa);
        if (end > a.rows) {
          ProductRows(b, std::max(begin, a.rows) - a.rows, end - a.rows, act, stride, tokens, yb,
                      isa);
        }
      },
      16);
}

}  // namespace strata::engine::kernels

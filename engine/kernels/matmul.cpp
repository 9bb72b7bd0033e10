#include "engine/kernels/matmul.h"

namespace strata::engine::kernels {

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
  const uint8_t* act = scratch.Prepare(w.type, x, w.cols);
  if (const PanelMatMulFn panel = GetPanelMatMul(w.type, isa)) {
    pool.ParallelFor(
        w.rows, [&](int64_t begin, int64_t end) { panel(w, begin, end, act, 0, 1, y); }, 16);
    return;
  }
  const DotFn dot = GetDot(w.type, isa);
  pool.ParallelFor(
      w.rows,
      [&](int64_t begin, int64_t end) {
        for (int64_t r = begin; r < end; ++r) y[r] = dot(w.cols, w.row(r), act);
      },
      16);
}

void RowDots(const WeightMatrix& w, const float* x, float* y, Isa isa,
             ActivationBuffer& scratch) {
  const uint8_t* act = scratch.Prepare(w.type, x, w.cols);
  if (const PanelMatMulFn panel = GetPanelMatMul(w.type, isa)) {
    panel(w, 0, w.rows, act, 0, 1, y);
    return;
  }
  const DotFn dot = GetDot(w.type, isa);
  for (int64_t r = 0; r < w.rows; ++r) y[r] = dot(w.cols, w.row(r), act);
}

void MatMul(const WeightMatrix& w, const float* x, int64_t tokens, float* y, ThreadPool& pool,
            Isa isa, ActivationBuffer& scratch) {
  if (tokens == 1) return MatVec(w, x, y, pool, isa, scratch);
  const uint8_t* act = scratch.Prepare(w.type, x, w.cols, tokens);
  const size_t stride = scratch.stride();
  if (const PanelMatMulFn panel = GetPanelMatMul(w.type, isa)) {
    pool.ParallelFor(
        w.rows, [&](int64_t begin, int64_t end) { panel(w, begin, end, act, stride, tokens, y); },
        16);
    return;
  }
  const DotFn dot = GetDot(w.type, isa);
  const Dot4Fn dot4 = GetDot4(w.type, isa);
  pool.ParallelFor(
      w.rows,
      [&](int64_t begin, int64_t end) {
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
      },
      16);
}

}  // namespace strata::engine::kernels

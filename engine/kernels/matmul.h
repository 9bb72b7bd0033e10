// Matrix-vector and matrix-matrix products over a quantised weight matrix, spread over
// a ThreadPool by output rows: each output element is one dot product computed by one
// thread, so results do not depend on the thread count.
#pragma once

#include <cstdint>
#include <vector>

#include "engine/kernels/kernels.h"
#include "engine/thread_pool.h"
#include "storage/ggml_types.h"

namespace strata::engine::kernels {

// A non-owning view of a 2-D weight matrix: `rows` rows of `cols` values each (GGML
// ne = [cols, rows]), `row_bytes` apart. A slice of a 3-D stack (one head, one
// expert) is also a WeightMatrix.
struct WeightMatrix {
  storage::GgmlType type = storage::GgmlType::kF32;
  int64_t cols = 0;
  int64_t rows = 0;
  const uint8_t* data = nullptr;
  size_t row_bytes = 0;

  const uint8_t* row(int64_t r) const { return data + static_cast<size_t>(r) * row_bytes; }
};

// Rows [row0, row0 + rows) of `w` as a matrix of their own (one head, one expert).
inline WeightMatrix RowSlice(const WeightMatrix& w, int64_t row0, int64_t rows) {
  return {w.type, w.cols, rows, w.row(row0), w.row_bytes};
}

// Reusable scratch for prepared activations, so hot loops do not allocate.
class ActivationBuffer {
 public:
  // Prepares `t` vectors of `n` values from x[t][n] for weights of `type`.
  const uint8_t* Prepare(storage::GgmlType type, const float* x, int64_t n, int64_t t = 1);
  size_t stride() const { return stride_; }

 private:
  std::vector<uint8_t> bytes_;
  size_t stride_ = 0;
};

// y[rows] = W . x[cols]
void MatVec(const WeightMatrix& w, const float* x, float* y, ThreadPool& pool, Isa isa,
            ActivationBuffer& scratch);

// y[rows] = W . x[cols] on the calling thread only (for callers already inside a
// parallel loop, e.g. one attention head each). The same values as MatVec.
void RowDots(const WeightMatrix& w, const float* x, float* y, Isa isa,
             ActivationBuffer& scratch);

// y[t][rows] = W . x[t][cols] for t in [0, tokens): each weight row is read once and
// applied to every token while it is in cache.
void MatMul(const WeightMatrix& w, const float* x, int64_t tokens, float* y, ThreadPool& pool,
            Isa isa, ActivationBuffer& scratch);

// MatMul of `a` and of `b` on the same input (an FFN's gate and up), with one
// prepared activation and one parallel loop over both matrices' rows: the same values
// as two MatMul calls, for half the hand-offs.
void MatMulPair(const WeightMatrix& a, const WeightMatrix& b, const float* x, int64_t tokens,
                float* ya, float* yb, ThreadPool& pool, Isa isa, ActivationBuffer& scratch);

}  // namespace strata::engine::kernels

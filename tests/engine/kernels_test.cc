// Kernels against their definitions: the scalar dot equals the dot of the dequantised
// weight and the dequantised activation; the AVX2 dot agrees with the scalar one; the
// quantised-activation product stays close to the exact f32 product; and MatVec and
// MatMul give bit-identical results for any thread count.
#include "engine/kernels/kernels.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstring>
#include <thread>
#include <vector>

#include "engine/kernels/matmul.h"
#include "engine/kernels/vector_ops.h"
#include "engine/quant/quantize.h"
#include "storage/ggml_types.h"
#include "tests/engine/weight_types.h"
#include "tools/synthetic_weights.h"

namespace strata::engine::kernels {
namespace {

using storage::GgmlType;

std::vector<float> Normal(int64_t n, uint64_t seed, float stddev) {
  std::vector<float> v(static_cast<size_t>(n));
  tools::Rng rng(seed);
  rng.FillNormal(v.data(), n, stddev, 0.0f);
  return v;
}

// The prepared activation, turned back into floats.
std::vector<float> DequantizeActivation(ActivationFormat f, const uint8_t* a, int64_t n) {
  std::vector<float> out(static_cast<size_t>(n));
  if (f == ActivationFormat::kF32) {
    std::memcpy(out.data(), a, static_cast<size_t>(n) * 4);
  } else if (f == ActivationFormat::kQ8) {
    const auto* b = reinterpret_cast<const ActQ8Block*>(a);
    for (int64_t i = 0; i < n; ++i) out[i] = b[i / 32].d * b[i / 32].qs[i % 32];
  } else if (f == ActivationFormat::kQ8Group) {
    const auto* g = reinterpret_cast<const ActQ8Group*>(a);
    for (int64_t i = 0; i < n; ++i)
      out[i] = g[i / 256].d[i / 32 % 8] * g[i / 256].qs[i / 32 % 8][i % 32];
  } else {
    const auto* b = reinterpret_cast<const ActQ8KBlock*>(a);
    for (int64_t i = 0; i < n; ++i) out[i] = b[i / 256].d * b[i / 256].qs[i % 256];
  }
  return out;
}

class DotTest : public ::testing::TestWithParam<GgmlType> {};

TEST_P(DotTest, ScalarIsTheDefinitionAndAvx2AgreesWithIt) {
  const GgmlType type = GetParam();
  ASSERT_TRUE(HasDot(type));
  for (int64_t n : {256, 1024, 2048 + 256}) {
    const auto w = Normal(n, 1 + n, 0.03f);
    const auto x = Normal(n, 2 + n, 1.0f);
    std::vector<uint8_t> wq(*storage::RowBytes(type, n));
    QuantizeRow(type, w.data(), n, wq.data());
    std::vector<float> wd(static_cast<size_t>(n));
    DequantizeRow(type, wq.data(), n, wd.data());

    const ActivationFormat f = ActivationFormatFor(type);
    std::vector<uint8_t> act(ActivationBytes(f, n));
    PrepareActivation(f, x.data(), n, act.data());
    const auto xd = DequantizeActivation(f, act.data(), n);

    double exact_q = 0, exact_f = 0, magnitude = 0;
    for (int64_t i = 0; i < n; ++i) {
      exact_q += static_cast<double>(wd[i]) * xd[i];
      exact_f += static_cast<double>(wd[i]) * x[i];
      magnitude += std::fabs(static_cast<double>(wd[i]) * x[i]);
    }
    const float scalar = GetDot(type, Isa::kScalar)(n, wq.data(), act.data());
    EXPECT_NEAR(scalar, exact_q, 1e-5 * magnitude) << storage::TypeName(type) << " n=" << n;
    // Quantising the activation to 8 bits moves the result by well under 1% of the
    // sum of |terms|.
    EXPECT_NEAR(scalar, exact_f, 1e-2 * magnitude) << storage::TypeName(type);
    if (BestIsa() == Isa::kAvx2) {
      const float simd = GetDot(type, Isa::kAvx2)(n, wq.data(), act.data());
      EXPECT_NEAR(simd, scalar, 1e-5 * magnitude) << storage::TypeName(type) << " n=" << n;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Types, DotTest, ::testing::ValuesIn(testing::kComputeTypes),
                         testing::TypeTestName);

TEST(Dot, ExtremeCodesDoNotSaturate) {
  // Q8_0 weights of -127 against activations of +-127: the AVX2 sign trick and
  // maddubs pair sums must stay exact.
  constexpr int64_t n = 256;
  std::vector<float> w(n, -1.0f), x(n);
  for (int64_t i = 0; i < n; ++i) x[i] = (i % 2) ? 1.0f : -1.0f;
  for (GgmlType type : {GgmlType::kQ8_0, GgmlType::kQ4_0, GgmlType::kQ4_1, GgmlType::kQ5_1,
                        GgmlType::kQ4_K, GgmlType::kMXFP4}) {
    std::vector<uint8_t> wq(*storage::RowBytes(type, n));
    QuantizeRow(type, w.data(), n, wq.data());
    std::vector<uint8_t> act(ActivationBytes(ActivationFormatFor(type), n));
    PrepareActivation(ActivationFormatFor(type), x.data(), n, act.data());
    const float scalar = GetDot(type, Isa::kScalar)(n, wq.data(), act.data());
    EXPECT_NEAR(scalar, 0.0f, 1e-3) << storage::TypeName(type);
    if (BestIsa() == Isa::kAvx2) {
      EXPECT_EQ(GetDot(type, Isa::kAvx2)(n, wq.data(), act.data()), scalar);
    }
  }
}

// Every token of a MatMul equals its own MatVec bit for bit, for any thread count:
// prefill and decode compute the same numbers. The shapes leave partial row panels
// (301 rows) and, for the 32-value types, a partial group of blocks (1408 columns) or
// an odd number of blocks (1440).
void ExpectMatMulMatchesMatVec(GgmlType type, int64_t cols, int64_t rows, int64_t tokens) {
  const auto w = Normal(cols * rows, 11, 0.05f);
  const size_t row_bytes = *storage::RowBytes(type, cols);
  std::vector<uint8_t> wq(row_bytes * rows);
  for (int64_t r = 0; r < rows; ++r) QuantizeRow(type, &w[r * cols], cols, &wq[r * row_bytes]);
  const WeightMatrix m{type, cols, rows, wq.data(), row_bytes};
  const auto x = Normal(cols * tokens, 12, 1.0f);
  std::vector<float> reference;
  for (unsigned threads : {1u, 2u, 3u, 7u}) {
    ThreadPool pool(threads);
    ActivationBuffer scratch;
    std::vector<float> y(rows * tokens), yv(rows);
    MatMul(m, x.data(), tokens, y.data(), pool, BestIsa(), scratch);
    for (int64_t t = 0; t < tokens; ++t) {
      MatVec(m, &x[t * cols], yv.data(), pool, BestIsa(), scratch);
      for (int64_t r = 0; r < rows; ++r) {
        ASSERT_EQ(yv[r], y[t * rows + r]) << storage::TypeName(type) << " cols " << cols
                                          << ": MatVec != MatMul, token " << t << " row " << r;
      }
    }
    // The single-row dot (what callers outside MatVec/MatMul use) gives the same bits.
    std::vector<uint8_t> act(ActivationBytes(ActivationFormatFor(type), cols));
    PrepareActivation(ActivationFormatFor(type), x.data(), cols, act.data());
    for (int64_t r = 0; r < rows; ++r) {
      ASSERT_EQ(GetDot(type, BestIsa())(cols, m.row(r), act.data()), y[r])
          << storage::TypeName(type) << " cols " << cols << ": dot != MatMul, row " << r;
    }
    if (reference.empty()) {
      reference = y;
    } else {
      ASSERT_EQ(y, reference) << storage::TypeName(type) << " with " << threads << " threads";
    }
  }
}

TEST(MatMul, EqualsMatVecForAnyThreadCount) {
  for (GgmlType type : {GgmlType::kQ4_0, GgmlType::kQ4_K, GgmlType::kF16, GgmlType::kQ6_K}) {
    ExpectMatMulMatchesMatVec(type, 512, 301, 5);
  }
  for (GgmlType type : {GgmlType::kQ4_0, GgmlType::kQ8_0, GgmlType::kQ5_0, GgmlType::kMXFP4}) {
    for (int64_t tokens : {2, 13}) ExpectMatMulMatchesMatVec(type, 1408, 37, tokens);
  }
  // An odd number of 32-value blocks (45), for kernels that step through blocks in pairs.
  for (GgmlType type : {GgmlType::kQ8_0, GgmlType::kQ5_0, GgmlType::kMXFP4}) {
    ExpectMatMulMatchesMatVec(type, 1440, 37, 6);
  }
}

TEST(MatMul, Q4_0PanelsAtTheInt16BoundDoNotOverflow) {
  // Codes of 15 (+7 after the offset) against activations of +127 everywhere put the
  // panels' 16-bit partial sums at their bound (8 pairs of 2 * 15 * 127 = 30480): the
  // decode panel (1 token), the transposed panel (4 and 5 tokens) and the single dot
  // must all still give the exact sum, 7 * d * 127 * da per value.
  constexpr int64_t cols = 512, rows = 11;
  std::vector<float> w(cols * rows, 0.875f);
  for (int64_t i = 0; i < cols * rows; i += 32) w[i] = -1.0f;  // sets d = 1/8; code 0 here
  const size_t row_bytes = *storage::RowBytes(GgmlType::kQ4_0, cols);
  std::vector<uint8_t> wq(row_bytes * rows);
  for (int64_t r = 0; r < rows; ++r)
    QuantizeRow(GgmlType::kQ4_0, &w[r * cols], cols, &wq[r * row_bytes]);
  const WeightMatrix m{GgmlType::kQ4_0, cols, rows, wq.data(), row_bytes};
  // Per block: 31 values of 0.875 and one of -1, against activations of 1.
  const float expected = (cols / 32) * (31 * 0.875f - 1.0f);
  for (int64_t tokens : {1, 4, 5}) {
    const std::vector<float> x(cols * tokens, 1.0f);
    ThreadPool pool(2);
    ActivationBuffer scratch;
    std::vector<float> y(rows * tokens);
    MatMul(m, x.data(), tokens, y.data(), pool, BestIsa(), scratch);
    for (float v : y) ASSERT_NEAR(v, expected, 1e-3f * expected) << "x" << tokens;
  }
}

TEST(MatMul, PairEqualsTwoProducts) {
  // Gate and up share one activation and one loop; the values must not change, also
  // where the two matrices cannot share (different types fall back to two products).
  constexpr int64_t cols = 1408, rows_a = 45, rows_b = 29;
  for (GgmlType type_b : {GgmlType::kQ4_0, GgmlType::kQ8_0}) {
    const auto wa = Normal(cols * rows_a, 21, 0.05f), wb = Normal(cols * rows_b, 22, 0.05f);
    const size_t ra = *storage::RowBytes(GgmlType::kQ4_0, cols);
    const size_t rb = *storage::RowBytes(type_b, cols);
    std::vector<uint8_t> qa(ra * rows_a), qb(rb * rows_b);
    for (int64_t r = 0; r < rows_a; ++r)
      QuantizeRow(GgmlType::kQ4_0, &wa[r * cols], cols, &qa[r * ra]);
    for (int64_t r = 0; r < rows_b; ++r) QuantizeRow(type_b, &wb[r * cols], cols, &qb[r * rb]);
    const WeightMatrix a{GgmlType::kQ4_0, cols, rows_a, qa.data(), ra};
    const WeightMatrix b{type_b, cols, rows_b, qb.data(), rb};
    for (int64_t tokens : {1, 6}) {
      const auto x = Normal(cols * tokens, 23, 1.0f);
      ThreadPool pool(3);
      ActivationBuffer scratch;
      std::vector<float> ya(rows_a * tokens), yb(rows_b * tokens), ea(ya.size()), eb(yb.size());
      MatMulPair(a, b, x.data(), tokens, ya.data(), yb.data(), pool, BestIsa(), scratch);
      MatMul(a, x.data(), tokens, ea.data(), pool, BestIsa(), scratch);
      MatMul(b, x.data(), tokens, eb.data(), pool, BestIsa(), scratch);
      EXPECT_EQ(ya, ea) << storage::TypeName(type_b) << " x" << tokens;
      EXPECT_EQ(yb, eb) << storage::TypeName(type_b) << " x" << tokens;
    }
  }
}

// Attention's weighted values: several heads' sums of rows at once, equal to the plain sum
// over the rows in order (bit for bit on AVX2, which adds one fma per term).
TEST(WeightedRowSums, EqualTheSumOverTheRowsInOrder) {
  const int64_t row_stride = 45, w_stride = 70, out_stride = 40;
  const std::vector<float> rows = Normal(70 * row_stride, 31, 1.0f);
  const std::vector<float> w = Normal(4 * w_stride, 32, 0.3f);
  for (Isa isa : {Isa::kScalar, BestIsa()}) {
    for (int m = 1; m <= 4; ++m) {
      for (int64_t len : {0, 1, 9, 70}) {
        for (int64_t n : {8, 16, 37}) {  // 16-wide passes, an 8-wide one, single columns
          std::vector<float> out(4 * out_stride, -1.0f), want(4 * out_stride, -1.0f);
          // Evenly spaced rows, or the same rows gathered through pointers.
          std::vector<const float*> ptrs;
          for (int64_t r = 0; r < 70; ++r) ptrs.push_back(&rows[r * row_stride]);
          const RowSet set =
              len % 2 ? RowSet{.ptrs = ptrs.data()} : RowSet{rows.data(), row_stride};
          WeightedRowSums(w.data(), w_stride, m, set, len, n, out.data(), out_stride, isa);
          for (int j = 0; j < m; ++j) {
            std::fill_n(&want[j * out_stride], n, 0.0f);
            for (int64_t s = 0; s < len; ++s) {
              for (int64_t i = 0; i < n; ++i) {
                float& y = want[j * out_stride + i];
                y = std::fma(w[j * w_stride + s], rows[s * row_stride + i], y);
              }
            }
          }
          for (int64_t i = 0; i < 4 * out_stride; ++i) {
            if (isa == Isa::kAvx2) {
              ASSERT_EQ(out[i], want[i])
                  << "m " << m << " len " << len << " n " << n << " at " << i;
            } else {
              ASSERT_NEAR(out[i], want[i], 1e-5f) << "m " << m << " len " << len << " at " << i;
            }
          }
        }
      }
    }
  }
}

// Attention's scores: several heads against several rows at once. Scalar is the plain
// definition; AVX2 agrees with it, and a row's score has the same bits whichever rows
// share its call (the thread split of the rows must not matter).
TEST(DotsWithRows, AgreeWithTheDefinitionAndIgnoreTheSplit) {
  const int64_t row_stride = 45, q_stride = 44, out_stride = 12;
  const std::vector<float> rows = Normal(11 * row_stride, 33, 1.0f);
  const std::vector<float> q = Normal(4 * q_stride, 34, 1.0f);
  for (int m = 1; m <= 4; ++m) {
    for (int64_t n : {8, 40, 43}) {
      std::vector<float> scalar(4 * out_stride, -1.0f), simd(4 * out_stride, -1.0f);
      DotsWithRows(q.data(), q_stride, m, RowSet{rows.data(), row_stride}, 11, n, 0.5f,
                   scalar.data(), out_stride, Isa::kScalar);
      for (int j = 0; j < m; ++j) {
        for (int64_t s = 0; s < 11; ++s) {
          double want = 0;
          for (int64_t i = 0; i < n; ++i)
            want += double{rows[s * row_stride + i]} * q[j * q_stride + i];
          ASSERT_NEAR(scalar[j * out_stride + s], 0.5 * want, 1e-4) << m << " " << n << " " << s;
        }
      }
      if (BestIsa() != Isa::kAvx2) continue;
      DotsWithRows(q.data(), q_stride, m, RowSet{rows.data(), row_stride}, 11, n, 0.5f, simd.data(),
                   out_stride, Isa::kAvx2);
      for (size_t i = 0; i < simd.size(); ++i) ASSERT_NEAR(simd[i], scalar[i], 1e-4) << i;
      // Rows 0-10 split as [0, 3) [3, 4) [4, 11): pairs shift, the bits do not.
      std::vector<float> split(4 * out_stride, -1.0f);
      for (auto [b, e] : {std::pair<int64_t, int64_t>{0, 3}, {3, 4}, {4, 11}}) {
        DotsWithRows(q.data(), q_stride, m, RowSet{&rows[b * row_stride], row_stride}, e - b, n,
                     0.5f, &split[b], out_stride, Isa::kAvx2);
      }
      EXPECT_EQ(split, simd) << "m " << m << " n " << n;
      // Gathered rows (here in reverse) give each row the same bits as evenly spaced ones.
      std::vector<const float*> reversed;
      for (int64_t r = 10; r >= 0; --r) reversed.push_back(&rows[r * row_stride]);
      std::vector<float> gathered(4 * out_stride, -1.0f);
      DotsWithRows(q.data(), q_stride, m, RowSet{.ptrs = reversed.data()}, 11, n, 0.5f,
                   gathered.data(), out_stride, Isa::kAvx2);
      for (int j = 0; j < m; ++j) {
        for (int64_t s = 0; s < 11; ++s)
          ASSERT_EQ(gathered[j * out_stride + s], simd[j * out_stride + 10 - s]) << m << " " << s;
      }
    }
  }
}

TEST(ThreadPool, EveryIndexExactlyOnce) {
  ThreadPool pool(3);
  for (int64_t n : {0, 1, 5, 16, 17, 1000}) {
    std::vector<int> hits(static_cast<size_t>(n), 0);
    pool.ParallelFor(
        n,
        [&](int64_t b, int64_t e) {
          for (int64_t i = b; i < e; ++i) ++hits[i];
        },
        4);
    for (int h : hits) ASSERT_EQ(h, 1);
  }
  EXPECT_GE(ThreadPool::PhysicalCores(), 1u);
}

// A thread held up in its first chunk (as by an interrupt) leaves the remaining chunks
// to the others: the loop does not wait for it chunk after chunk.
TEST(ThreadPool, AHeldUpThreadsRemainingChunksGoToTheOthers) {
  ThreadPool pool(2);  // 4 chunks of 2 grains: thread 0 starts on [0, 2), thread 1 on [2, 4)
  std::vector<std::thread::id> ran(8);
  pool.ParallelFor(
      8,
      [&](int64_t b, int64_t e) {
        if (b == 0) std::this_thread::sleep_for(std::chrono::milliseconds(300));
        for (int64_t i = b; i < e; ++i) ran[static_cast<size_t>(i)] = std::this_thread::get_id();
      },
      2);
  EXPECT_EQ(ran[0], std::this_thread::get_id()) << "the caller runs chunk 0";
  for (size_t i = 2; i < 8; ++i) EXPECT_NE(ran[i], ran[0]) << "index " << i;
}

}  // namespace
}  // namespace strata::engine::kernels

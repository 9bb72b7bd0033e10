// The IQ family: random codes (every bit pattern of an IQ block is a valid block) run
// through the scalar dot, the AVX2 dot and the dequantizer. The scalar dot is the
// dot of the dequantized row; the AVX2 dot gives the same bits (both compute one exact
// integer per super-block and the same float expression); MatMul equals MatVec.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "engine/kernels/kernels.h"
#include "engine/kernels/matmul.h"
#include "engine/quant/quantize.h"
#include "engine/thread_pool.h"
#include "storage/ggml_types.h"
#include "tests/engine/iq_codes.h"
#include "tests/engine/weight_types.h"
#include "tools/synthetic_weights.h"

namespace strata::engine::kernels {
namespace {

using storage::GgmlType;

using testing::kIqTypes;

std::vector<uint8_t> RandomCodes(GgmlType type, int64_t n, uint64_t seed, float scale) {
  return testing::RandomIqCodes(type, n, seed, scale);
}

std::vector<float> Normal(int64_t n, uint64_t seed) {
  std::vector<float> v(static_cast<size_t>(n));
  tools::Rng rng(seed);
  rng.FillNormal(v.data(), n, 1.0f, 0.0f);
  return v;
}

class IqDotTest : public ::testing::TestWithParam<GgmlType> {};

TEST_P(IqDotTest, RandomCodesScalarIsTheDefinitionAndAvx2IsBitIdentical) {
  const GgmlType type = GetParam();
  for (int64_t n : {256, 2048, 7168}) {
    for (uint64_t seed = 1; seed <= 20; ++seed) {
      const auto row = RandomCodes(type, n, seed * 7919 + n, 0.01f);
      std::vector<float> wd(static_cast<size_t>(n));
      DequantizeRow(type, row.data(), n, wd.data());
      const auto x = Normal(n, seed);
      const ActivationFormat f = ActivationFormatFor(type);
      std::vector<uint8_t> act(ActivationBytes(f, n));
      PrepareActivation(f, x.data(), n, act.data());
      // The activation as the kernel sees it: d * q per value.
      std::vector<float> xd(static_cast<size_t>(n));
      if (f == ActivationFormat::kQ8) {
        const auto* b = reinterpret_cast<const ActQ8Block*>(act.data());
        for (int64_t i = 0; i < n; ++i) xd[i] = b[i / 32].d * b[i / 32].qs[i % 32];
      } else {
        ASSERT_EQ(f, ActivationFormat::kQ8K);
        const auto* b = reinterpret_cast<const ActQ8KBlock*>(act.data());
        for (int64_t i = 0; i < n; ++i) xd[i] = b[i / 256].d * b[i / 256].qs[i % 256];
      }
      double exact = 0, magnitude = 0;
      for (int64_t i = 0; i < n; ++i) {
        exact += static_cast<double>(wd[i]) * xd[i];
        magnitude += std::fabs(static_cast<double>(wd[i]) * xd[i]);
      }
      const float scalar = GetDot(type, Isa::kScalar)(n, row.data(), act.data());
      ASSERT_NEAR(scalar, exact, 1e-5 * magnitude) << storage::TypeName(type) << " n=" << n;
      if (BestIsa() != Isa::kScalar) {
        ASSERT_EQ(GetDot(type, Isa::kAvx2)(n, row.data(), act.data()), scalar)
            << storage::TypeName(type) << " n=" << n << " seed " << seed;
      }
    }
  }
}

TEST_P(IqDotTest, ExtremeActivationsDoNotSaturate) {
  // Activations of +-127 everywhere (one value per block at the maximum) against random
  // codes: maddubs' int16 pair sums sit at their largest (2 * 62 * 127 for IQ3_XXS,
  // 2 * 127 * 127 for the IQ4 types) and must stay exact.
  const GgmlType type = GetParam();
  constexpr int64_t n = 1024;
  std::vector<float> x(n);
  for (int64_t i = 0; i < n; ++i) x[i] = (i / 3) % 2 ? 1.0f : -1.0f;
  const ActivationFormat f = ActivationFormatFor(type);
  std::vector<uint8_t> act(ActivationBytes(f, n));
  PrepareActivation(f, x.data(), n, act.data());
  for (uint64_t seed = 1; seed <= 50; ++seed) {
    const auto row = RandomCodes(type, n, seed, 1.0f);
    const float scalar = GetDot(type, Isa::kScalar)(n, row.data(), act.data());
    if (BestIsa() != Isa::kScalar) {
      ASSERT_EQ(GetDot(type, Isa::kAvx2)(n, row.data(), act.data()), scalar) << storage::TypeName(type);
    }
  }
}

TEST_P(IqDotTest, MatMulEqualsMatVecForAnyThreadCount) {
  const GgmlType type = GetParam();
  constexpr int64_t cols = 2048, rows = 37;
  const size_t row_bytes = *storage::RowBytes(type, cols);
  std::vector<uint8_t> w;
  for (int64_t r = 0; r < rows; ++r) {
    const auto row = RandomCodes(type, cols, 100 + r, 0.002f);
    w.insert(w.end(), row.begin(), row.end());
  }
  const WeightMatrix m{type, cols, rows, w.data(), row_bytes};
  constexpr int64_t tokens = 6;
  const auto x = Normal(cols * tokens, 5);
  std::vector<float> reference;
  for (unsigned threads : {1u, 2u, 3u}) {
    ThreadPool pool(threads);
    ActivationBuffer scratch;
    std::vector<float> y(rows * tokens), yv(rows);
    MatMul(m, x.data(), tokens, y.data(), pool, BestIsa(), scratch);
    for (int64_t t = 0; t < tokens; ++t) {
      MatVec(m, &x[t * cols], yv.data(), pool, BestIsa(), scratch);
      for (int64_t r = 0; r < rows; ++r) ASSERT_EQ(yv[r], y[t * rows + r]) << storage::TypeName(type);
    }
    if (reference.empty()) reference = y;
    ASSERT_EQ(y, reference) << storage::TypeName(type) << " threads " << threads;
  }
}

TEST_P(IqDotTest, QuantizerFollowsTheInput) {
  // strata's quantizer is plain (nearest grid point), but it must track the input: the
  // dequantized row correlates with the original, and better for more bits.
  const GgmlType type = GetParam();
  constexpr int64_t n = 4096;
  const auto w = Normal(n, 77);
  std::vector<uint8_t> q(*storage::RowBytes(type, n));
  QuantizeRow(type, w.data(), n, q.data());
  std::vector<float> back(n);
  DequantizeRow(type, q.data(), n, back.data());
  double dot = 0, ww = 0, bb = 0;
  for (int64_t i = 0; i < n; ++i) dot += w[i] * back[i], ww += w[i] * w[i], bb += back[i] * back[i];
  const double correlation = dot / std::sqrt(ww * bb);
  const double bits = 8.0 * storage::TypeInfo(type).block_bytes / storage::TypeInfo(type).block_elems;
  // Measured: 0.82-0.84 below 2 bits, 0.91-0.95 at 2-2.6, 0.98-0.99 at 3-3.5, 0.997 at 4+.
  const double floor = bits < 2 ? 0.78 : bits < 3 ? 0.88 : bits < 4 ? 0.96 : 0.99;
  EXPECT_GT(correlation, floor) << storage::TypeName(type) << " at " << bits << " bits";
  std::printf("[ %s ] %.2f bits/weight, correlation %.4f\n", std::string(storage::TypeName(type)).c_str(),
              bits, correlation);
}

INSTANTIATE_TEST_SUITE_P(Iq, IqDotTest, ::testing::ValuesIn(kIqTypes),
                         testing::TypeTestName);

}  // namespace
}  // namespace strata::engine::kernels

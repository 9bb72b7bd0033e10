// strata's formats and kernels against llama.cpp's own library (ggml_library.h), for
// every weight type strata computes with:
//  - rows quantized by ggml (ggml_quantize_chunk, with an importance vector: IQ2_XXS,
//    IQ2_XS, IQ1_S and IQ1_M need one) dequantize to the same floats in strata;
//  - rows strata quantizes (what make-model writes) dequantize to the same floats in
//    ggml, and random IQ codes (every grid index and sign pattern) too: the grids agree;
//  - strata's dot on ggml's own prepared activation equals ggml's vec_dot up to float
//    summation order, and strata's dot end to end (its own activation rounding) stays
//    within the 8-bit activation error of ggml's.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "engine/kernels/kernels.h"
#include "engine/quant/fp16.h"
#include "engine/quant/quantize.h"
#include "storage/ggml_types.h"
#include "tests/engine/iq_codes.h"
#include "tests/engine/weight_types.h"
#include "tests/ggml/ggml_library.h"
#include "tools/synthetic_weights.h"

namespace strata {
namespace {

using engine::kernels::ActivationFormat;
using storage::GgmlType;

const testing::GgmlLibrary& Ggml() {
  std::string error;
  const testing::GgmlLibrary* lib = testing::LoadGgml(&error);
  // Never a skip: setup.sh fetches the library; without it these tests fail.
  if (!lib) {
    ADD_FAILURE() << error;
    std::abort();
  }
  return *lib;
}

ggml_type G(GgmlType t) { return static_cast<ggml_type>(static_cast<uint32_t>(t)); }

std::vector<float> Normal(int64_t n, uint64_t seed, float stddev = 1.0f) {
  std::vector<float> v(static_cast<size_t>(n));
  tools::Rng rng(seed);
  rng.FillNormal(v.data(), n, stddev, 0.0f);
  return v;
}

// ggml's quantization of `rows` rows of n values, with a random positive importance
// vector (what llama-quantize takes from an imatrix file).
std::vector<uint8_t> GgmlQuantize(GgmlType type, const std::vector<float>& x, int64_t rows, int64_t n) {
  std::vector<float> importance(static_cast<size_t>(n));
  tools::Rng rng(99);
  for (float& v : importance) v = 0.25f + rng.Uniform01();
  std::vector<uint8_t> out(*storage::RowBytes(type, n) * rows);
  const size_t written = Ggml().quantize_chunk(G(type), x.data(), out.data(), 0, rows, n, importance.data());
  EXPECT_EQ(written, out.size());
  return out;
}

std::vector<float> GgmlDequantize(GgmlType type, const void* row, int64_t n) {
  std::vector<float> out(static_cast<size_t>(n));
  const ggml_type_traits* t = Ggml().get_type_traits(G(type));
  if (type == GgmlType::kF32) {
    std::memcpy(out.data(), row, n * sizeof(float));
  } else {
    t->to_float(row, out.data(), n);
  }
  return out;
}

std::vector<float> StrataDequantize(GgmlType type, const void* row, int64_t n) {
  std::vector<float> out(static_cast<size_t>(n));
  engine::DequantizeRow(type, row, n, out.data());
  return out;
}

// Bit-for-bit equality of two float rows (NaN-safe, names the first difference).
void ExpectSameFloats(const std::vector<float>& a, const std::vector<float>& b, const std::string& what) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    uint32_t x, y;
    std::memcpy(&x, &a[i], 4);
    std::memcpy(&y, &b[i], 4);
    ASSERT_EQ(x, y) << what << ": value " << i << " is " << a[i] << " in strata, " << b[i] << " in ggml";
  }
}

// ggml's prepared activation (its vec_dot_type) in strata's layout for `format`.
std::vector<uint8_t> StrataActivationFromGgml(ggml_type vec_type, const uint8_t* a, int64_t n,
                                              ActivationFormat format) {
  using engine::kernels::ActQ8Block;
  using engine::kernels::ActQ8Group;
  using engine::kernels::ActQ8KBlock;
  std::vector<uint8_t> out(engine::kernels::ActivationBytes(format, n));
  switch (vec_type) {
    case GGML_TYPE_Q8_K:  // {float d; int8 qs[256]; int16 bsums[16]}: strata's layout
      EXPECT_EQ(format, ActivationFormat::kQ8K);
      std::memcpy(out.data(), a, out.size());
      return out;
    case GGML_TYPE_Q8_0:    // {f16 d; int8 qs[32]}
    case GGML_TYPE_Q8_1: {  // {f16 d; f16 sum; int8 qs[32]}
      const size_t stride = vec_type == GGML_TYPE_Q8_0 ? 34 : 36;
      const size_t qs_at = vec_type == GGML_TYPE_Q8_0 ? 2 : 4;
      for (int64_t b = 0; b < n / 32; ++b) {
        uint16_t h;
        std::memcpy(&h, a + b * stride, 2);
        const float d = engine::HalfToFloat(h);
        const auto* qs = reinterpret_cast<const int8_t*>(a + b * stride + qs_at);
        if (format == ActivationFormat::kQ8) {
          auto* y = reinterpret_cast<ActQ8Block*>(out.data()) + b;
          y->d = d;
          std::memcpy(y->qs, qs, 32);
        } else {
          EXPECT_EQ(format, ActivationFormat::kQ8Group);
          ActQ8Group& g = reinterpret_cast<ActQ8Group*>(out.data())[b / 8];
          g.d[b % 8] = d;
          std::memcpy(g.qs[b % 8], qs, 32);
          g.sums[b % 8] = 0;
          for (int j = 0; j < 32; ++j) g.sums[b % 8] += qs[j];
        }
      }
      return out;
    }
    case GGML_TYPE_F16:
    case GGML_TYPE_BF16: {
      auto* y = reinterpret_cast<float*>(out.data());
      for (int64_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, a + 2 * i, 2);
        y[i] = vec_type == GGML_TYPE_F16 ? engine::HalfToFloat(h) : engine::Bf16ToFloat(h);
      }
      return out;
    }
    case GGML_TYPE_F32:
      std::memcpy(out.data(), a, out.size());
      return out;
    default:
      ADD_FAILURE() << "unexpected vec_dot_type " << vec_type;
      return out;
  }
}

class GgmlReference : public ::testing::TestWithParam<GgmlType> {};

TEST_P(GgmlReference, GgmlQuantizedRowsDequantizeToTheSameFloats) {
  const GgmlType type = GetParam();
  constexpr int64_t rows = 8, n = 4096;
  const auto x = Normal(rows * n, 1, 0.02f);
  const auto q = GgmlQuantize(type, x, rows, n);
  const size_t row_bytes = *storage::RowBytes(type, n);
  for (int64_t r = 0; r < rows; ++r) {
    ExpectSameFloats(StrataDequantize(type, &q[r * row_bytes], n), GgmlDequantize(type, &q[r * row_bytes], n),
                     std::string(storage::TypeName(type)) + " row " + std::to_string(r));
  }
}

TEST_P(GgmlReference, StrataQuantizedRowsMeanTheSameInGgml) {
  // What make-model writes, llama.cpp reads as strata does.
  const GgmlType type = GetParam();
  ASSERT_TRUE(engine::CanQuantize(type));
  constexpr int64_t n = 4096;
  for (uint64_t seed = 1; seed <= 4; ++seed) {
    const auto x = Normal(n, seed, 0.05f);
    std::vector<uint8_t> q(*storage::RowBytes(type, n));
    engine::QuantizeRow(type, x.data(), n, q.data());
    ExpectSameFloats(StrataDequantize(type, q.data(), n), GgmlDequantize(type, q.data(), n),
                     std::string(storage::TypeName(type)));
  }
}

TEST_P(GgmlReference, DotEqualsGgmlVecDot) {
  const GgmlType type = GetParam();
  const ggml_type_traits_cpu* cpu = Ggml().get_type_traits_cpu(G(type));
  ASSERT_NE(cpu->vec_dot, nullptr);
  const ggml_type vec_type = cpu->vec_dot_type;
  const ggml_type_traits_cpu* vec_cpu = Ggml().get_type_traits_cpu(vec_type);
  const ActivationFormat format = engine::kernels::ActivationFormatFor(type);
  for (int64_t n : {256, 2048, 7168}) {
    constexpr int64_t rows = 6;
    const auto w = Normal(rows * n, 10 + n, 0.03f);
    const auto q = GgmlQuantize(type, w, rows, n);
    const size_t row_bytes = *storage::RowBytes(type, n);
    const auto x = Normal(n, 20 + n);
    std::vector<uint8_t> ggml_act(*storage::RowBytes(static_cast<GgmlType>(vec_type), n));
    if (vec_type == GGML_TYPE_F32) {
      std::memcpy(ggml_act.data(), x.data(), n * sizeof(float));
    } else {
      vec_cpu->from_float(x.data(), ggml_act.data(), n);
    }
    const auto same_act = StrataActivationFromGgml(vec_type, ggml_act.data(), n, format);
    std::vector<uint8_t> own_act(engine::kernels::ActivationBytes(format, n));
    engine::kernels::PrepareActivation(format, x.data(), n, own_act.data());
    for (int64_t r = 0; r < rows; ++r) {
      const uint8_t* row = &q[r * row_bytes];
      float reference = 0;
      cpu->vec_dot(static_cast<int>(n), &reference, 0, row, 0, ggml_act.data(), 0, 1);
      const auto wd = StrataDequantize(type, row, n);
      double magnitude = 0;
      for (int64_t i = 0; i < n; ++i) magnitude += std::fabs(static_cast<double>(wd[i]) * x[i]);
      for (engine::kernels::Isa isa : {engine::kernels::Isa::kScalar, engine::kernels::BestIsa()}) {
        const auto dot = engine::kernels::GetDot(type, isa);
        const std::string what = std::string(storage::TypeName(type)) + " n=" + std::to_string(n) +
                                 " row " + std::to_string(r) + " " + engine::kernels::IsaName(isa);
        // Same activation codes: only the float summation order differs. Except for
        // Q4_1/Q5_1: ggml's q8_1 activation carries each block's d * sum(q) rounded to
        // f16, which its min term uses; strata sums the codes exactly (measured: up to
        // 1.3e-3 of the magnitude apart).
        const double same_tolerance = vec_type == GGML_TYPE_Q8_1 ? 3e-3 : 2e-5;
        EXPECT_NEAR(dot(n, row, same_act.data()), reference, same_tolerance * magnitude) << what;
        // strata's own 8-bit activation (rounded slightly differently from ggml's).
        EXPECT_NEAR(dot(n, row, own_act.data()), reference, 5e-3 * magnitude) << what;
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Types, GgmlReference, ::testing::ValuesIn(testing::kComputeTypes),
                         testing::TypeTestName);

TEST(GgmlReference, RandomIqCodesDequantizeToTheSameFloats) {
  // Random bytes reach every grid index and sign pattern: the grids strata carries as
  // data (engine/quant/iq_grids.cpp) are ggml's, entry for entry.
  for (GgmlType type : testing::kIqTypes) {
    constexpr int64_t n = 256 * 64;
    for (uint64_t seed = 1; seed <= 8; ++seed) {
      const auto row = testing::RandomIqCodes(type, n, seed, 0.5f);
      ExpectSameFloats(StrataDequantize(type, row.data(), n), GgmlDequantize(type, row.data(), n),
                       std::string(storage::TypeName(type)) + " seed " + std::to_string(seed));
    }
  }
}

TEST(GgmlReference, TheLibraryIsLlamaCppsOwn) {
  // Guards the premise: the traits come from ggml's library, whose names match ours.
  const auto& lib = Ggml();
  std::printf("[ ggml ] %s, CPU backend %s\n", lib.dir.c_str(), lib.cpu_variant.c_str());
  EXPECT_NE(lib.cpu_variant, "libggml-cpu-sapphirerapids.so");
  for (GgmlType type : testing::kComputeTypes) {
    EXPECT_EQ(std::string(lib.get_type_traits(G(type))->type_name), storage::TypeName(type));
    EXPECT_EQ(static_cast<uint64_t>(lib.get_type_traits(G(type))->type_size), storage::TypeInfo(type).block_bytes);
  }
}

}  // namespace
}  // namespace strata

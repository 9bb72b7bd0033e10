// Quantisers and dequantisers against the plain definitions: half/bf16 conversion is
// exact where it must be, and each block format round-trips within its resolution.
#include "engine/quant/quantize.h"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "engine/quant/fp16.h"
#include "storage/ggml_types.h"
#include "tools/synthetic_weights.h"

namespace strata::engine {
namespace {

using storage::GgmlType;

TEST(Fp16, EveryHalfRoundTripsExactly) {
  for (uint32_t h = 0; h < 65536; ++h) {
    const float f = HalfToFloat(static_cast<uint16_t>(h));
    if (std::isnan(f)) continue;
    EXPECT_EQ(FloatToHalf(f), h) << std::hex << h;
  }
}

TEST(Fp16, RoundsToNearestEven) {
  EXPECT_EQ(FloatToHalf(1.0f), 0x3C00);
  EXPECT_EQ(FloatToHalf(65504.0f), 0x7BFF);
  EXPECT_EQ(FloatToHalf(65520.0f), 0x7C00);            // rounds up to infinity
  EXPECT_EQ(FloatToHalf(1.0f + 1.0f / 2048), 0x3C00);  // tie -> even
  EXPECT_EQ(FloatToHalf(1.0f + 3.0f / 2048), 0x3C02);  // tie -> even (up)
  EXPECT_EQ(FloatToHalf(5.96046448e-08f), 0x0001);     // smallest subnormal
  EXPECT_EQ(FloatToHalf(-0.0f), 0x8000);
}

TEST(Bf16, RoundsToNearestEven) {
  EXPECT_EQ(FloatToBf16(1.0f), 0x3F80);
  EXPECT_EQ(Bf16ToFloat(FloatToBf16(3.140625f)), 3.140625f);
  EXPECT_EQ(FloatToBf16(BitsFloat(0x3F808000)), 0x3F80);  // tie -> even (down)
  EXPECT_EQ(FloatToBf16(BitsFloat(0x3F818000)), 0x3F82);  // tie -> even (up)
}

struct Tolerance {
  GgmlType type;
  double max_rel_rmse;  // RMS error relative to the data's RMS
};

class QuantRoundTrip : public ::testing::TestWithParam<Tolerance> {};

TEST_P(QuantRoundTrip, ErrorWithinTheFormatsResolution) {
  const auto [type, max_rel] = GetParam();
  constexpr int64_t n = 4096;
  std::vector<float> x(n), y(n);
  tools::Rng rng(7);
  rng.FillNormal(x.data(), n, 0.05f, 0.01f);
  std::vector<uint8_t> q(*storage::RowBytes(type, n));
  QuantizeRow(type, x.data(), n, q.data());
  DequantizeRow(type, q.data(), n, y.data());
  double err = 0, ref = 0;
  for (int64_t i = 0; i < n; ++i) {
    err += (x[i] - y[i]) * (x[i] - y[i]);
    ref += x[i] * x[i];
  }
  const double rel = std::sqrt(err / ref);
  EXPECT_LE(rel, max_rel) << storage::TypeName(type);
  if (type != GgmlType::kF32) {
    EXPECT_GT(rel, 0) << "a lossy format lost nothing?";
  }
}

// 4-bit formats sit near 10% relative error on Gaussian data, 5-bit near 5%,
// 8-bit under 1%: bounds a little above what ggml's own quantisers achieve.
INSTANTIATE_TEST_SUITE_P(
    Types, QuantRoundTrip,
    ::testing::Values(Tolerance{GgmlType::kF32, 0.0}, Tolerance{GgmlType::kF16, 1e-3},
                      Tolerance{GgmlType::kBF16, 5e-3}, Tolerance{GgmlType::kQ8_0, 0.01},
                      Tolerance{GgmlType::kQ5_0, 0.06}, Tolerance{GgmlType::kQ4_0, 0.12},
                      Tolerance{GgmlType::kQ4_K, 0.12}, Tolerance{GgmlType::kQ4_1, 0.12},
                      Tolerance{GgmlType::kQ5_1, 0.06}, Tolerance{GgmlType::kQ5_K, 0.06},
                      Tolerance{GgmlType::kQ6_K, 0.03}, Tolerance{GgmlType::kQ3_K, 0.25},
                      Tolerance{GgmlType::kQ2_K, 0.45}, Tolerance{GgmlType::kMXFP4, 0.13}));

TEST(Q4_0, MatchesTheDefinitionOnAKnownBlock) {
  // Values -8..7 times 0.5 (well, scaled so the extreme is -4): exactly representable.
  std::vector<float> x(32);
  for (int i = 0; i < 32; ++i) x[i] = 0.5f * static_cast<float>((i % 16) - 8);
  std::vector<uint8_t> q(18);
  QuantizeRowQ4_0(x.data(), 32, q.data());
  std::vector<float> y(32);
  DequantizeRowQ4_0(q.data(), 32, y.data());
  for (int i = 0; i < 32; ++i) EXPECT_FLOAT_EQ(y[i], x[i]) << i;
}

TEST(Mxfp4, BlockLayoutIsGgufs) {
  // docs/GGUF.md §1: byte 0 is the E8M0 scale, qs[j] holds value j in its low nibble and
  // value j+16 in its high one, codes are E2M1 (0, .5, 1, 1.5, 2, 3, 4, 6, then negated).
  std::vector<uint8_t> block(17, 0);
  block[0] = 128;     // scale 2
  block[1] = 0x71;    // value 0: code 1 (0.5), value 16: code 7 (6)
  block[2] = 0xF9;    // value 1: code 9 (-0.5), value 17: code 15 (-6)
  block[16] = 0x5D;   // value 15: code 13 (-3), value 31: code 5 (3)
  std::vector<float> y(32);
  DequantizeRowMxfp4(block.data(), 32, y.data());
  EXPECT_EQ(y[0], 1.0f);
  EXPECT_EQ(y[16], 12.0f);
  EXPECT_EQ(y[1], -1.0f);
  EXPECT_EQ(y[17], -12.0f);
  EXPECT_EQ(y[15], -6.0f);
  EXPECT_EQ(y[31], 6.0f);
  EXPECT_EQ(y[2], 0.0f);
}

TEST(Mxfp4, RepresentableValuesRoundTripExactly) {
  // Every E2M1 magnitude, both signs, at a scale of 1/4: exact in MXFP4.
  const float codes[8] = {0, 0.5f, 1, 1.5f, 2, 3, 4, 6};
  std::vector<float> x(64);
  for (int i = 0; i < 64; ++i) x[i] = 0.25f * codes[i % 8] * (i % 16 < 8 ? 1.0f : -1.0f);
  std::vector<uint8_t> q(34);
  QuantizeRowMxfp4(x.data(), 64, q.data());
  EXPECT_EQ(q[0], 125);  // 2^-2
  std::vector<float> y(64);
  DequantizeRowMxfp4(q.data(), 64, y.data());
  for (int i = 0; i < 64; ++i) EXPECT_EQ(y[i], x[i]) << i;
}

TEST(Q4_K, ZeroBlockAndConstantBlock) {
  std::vector<float> zeros(256, 0.0f), out(256, 1.0f);
  std::vector<uint8_t> q(144);
  QuantizeRowQ4_K(zeros.data(), 256, q.data());
  DequantizeRowQ4_K(q.data(), 256, out.data());
  for (float v : out) EXPECT_EQ(v, 0.0f);
  std::vector<float> ramp(256);
  for (int i = 0; i < 256; ++i) ramp[i] = static_cast<float>(i % 16) * 0.25f - 1.0f;
  QuantizeRowQ4_K(ramp.data(), 256, q.data());
  DequantizeRowQ4_K(q.data(), 256, out.data());
  for (int i = 0; i < 256; ++i) EXPECT_NEAR(out[i], ramp[i], 0.02f) << i;
}

}  // namespace
}  // namespace strata::engine

// make-model: deterministic bytes, every preset and type loads back as a runnable
// deepseek2 model, weights have the statistics they were drawn with (a real quantiser,
// not random bytes), routing skew shapes expert popularity, and interrupts leave nothing.
#include "tools/make_model.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <numeric>

#include "engine/deepseek2_tensors.h"
#include "engine/quant/quantize.h"
#include "storage/gguf.h"
#include "tools/inspect.h"
#include "tools/synthetic_weights.h"

namespace strata::tools {
namespace {

using storage::GgmlType;

class MakeModelTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // Parameterised names hold a '/': one directory, not a nested pair left behind.
    std::string name = ::testing::UnitTest::GetInstance()->current_test_info()->name();
    std::replace(name.begin(), name.end(), '/', '_');
    dir_ = std::filesystem::temp_directory_path() /
           ("strata-mm-" + std::to_string(::getpid()) + "-" + name);
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string Path(const std::string& name) const { return (dir_ / name).string(); }

  static MakeModelOptions Tiny(const std::string& out) {
    MakeModelOptions o;
    o.preset = "tiny";
    o.output = out;
    o.progress = false;
    return o;
  }

  std::filesystem::path dir_;
};

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

TEST_F(MakeModelTest, SameSeedSameBytesWhateverTheThreads) {
  MakeModelOptions a = Tiny(Path("a.gguf"));
  a.threads = 1;
  MakeModelOptions b = Tiny(Path("b.gguf"));
  b.threads = 3;
  MakeModelOptions c = Tiny(Path("c.gguf"));
  c.seed = 43;
  ASSERT_TRUE(MakeModel(a).ok());
  ASSERT_TRUE(MakeModel(b).ok());
  ASSERT_TRUE(MakeModel(c).ok());
  const std::string bytes_a = ReadAll(a.output);
  EXPECT_GT(bytes_a.size(), 1u << 20);
  EXPECT_EQ(bytes_a, ReadAll(b.output));
  EXPECT_NE(bytes_a, ReadAll(c.output));
}

TEST_F(MakeModelTest, EveryPresetLoadsBackRunnable) {
  for (const std::string& preset : PresetNames()) {
    MakeModelOptions o = Tiny(Path(preset + ".gguf"));
    o.preset = preset;
    o.tokenizer = "none";
    if (preset.starts_with("engram")) {  // fixed layers; small tables
      o.experts = 8;
      o.engram_rows = 2400;
    } else if (preset == "v4-tiny") {
      o.experts = 8;
    } else if (preset == "v3-slice") {  // V3's widths would make this ~600 MB
      o.layers = 2;
      o.experts = 32;  // top-8 from 4 of 8 groups needs at least 16
      o.hidden = 512;
    } else if (preset == "v4flash-slice") {  // Flash's attention alone is ~120 MB a layer
      o.layers = 1;
      o.experts = 6;  // top-6 needs six
    } else if (preset != "tiny") {  // keep real per-layer shapes, but few layers and experts
      o.layers = 2;
      o.experts = 8;
    }
    auto report = MakeModel(o);
    ASSERT_TRUE(report.ok()) << preset << ": " << report.status().ToString();
    auto f = storage::ReadGgufFile(o.output);
    ASSERT_TRUE(f.ok()) << f.status().ToString();
    const Verdict v = CheckRunnable(*f);
    EXPECT_TRUE(v.runnable) << preset << ": " << v.text;
    auto config = engine::Deepseek2Config::FromGguf(*f);
    ASSERT_TRUE(config.ok());
    auto expected = PresetConfig(o);
    ASSERT_TRUE(expected.ok());
    EXPECT_EQ(config->n_embd, expected->n_embd) << preset;
    EXPECT_EQ(config->n_head, expected->n_head) << preset;
    EXPECT_EQ(config->n_ff_exp, expected->n_ff_exp) << preset;
    EXPECT_EQ(config->q_lora_rank, expected->q_lora_rank) << preset;
    EXPECT_EQ(config->gating, expected->gating) << preset;
    EXPECT_EQ(config->n_vocab, 262u);
  }
}

TEST_F(MakeModelTest, V2LiteShapesAreDeepseekV2Lite) {
  MakeModelOptions o = Tiny("");
  o.preset = "v2lite";
  auto c = PresetConfig(o);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->n_layer, 27u);
  EXPECT_EQ(c->n_embd, 2048u);
  EXPECT_EQ(c->n_leading_dense, 1u);
  EXPECT_EQ(c->n_ff, 10944u);
  EXPECT_EQ(c->n_expert, 64u);
  EXPECT_EQ(c->n_expert_shared, 2u);
  EXPECT_EQ(c->n_expert_used, 6u);
  EXPECT_EQ(c->n_ff_exp, 1408u);
  EXPECT_EQ(c->n_head, 16u);
  EXPECT_EQ(c->kv_lora_rank, 512u);
  EXPECT_EQ(c->q_lora_rank, 0u);
  EXPECT_EQ(c->qk_nope, 128u);
  EXPECT_EQ(c->qk_rope, 64u);
  EXPECT_EQ(c->v_head, 128u);
}

TEST_F(MakeModelTest, V3SliceShapesAreDeepseekV3) {
  // docs/MODEL.md §11, from V3's inference config.
  MakeModelOptions o = Tiny("");
  o.preset = "v3-slice";
  auto c = PresetConfig(o);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->arch, "deepseek2");
  EXPECT_EQ(c->n_layer, 4u);
  EXPECT_EQ(c->n_leading_dense, 3u);
  EXPECT_EQ(c->n_embd, 7168u);
  EXPECT_EQ(c->n_ff, 18432u);
  EXPECT_EQ(c->n_head, 128u);
  EXPECT_EQ(c->q_lora_rank, 1536u);
  EXPECT_EQ(c->kv_lora_rank, 512u);
  EXPECT_EQ(c->qk_nope, 128u);
  EXPECT_EQ(c->qk_rope, 64u);
  EXPECT_EQ(c->v_head, 128u);
  EXPECT_EQ(c->n_expert, 256u);
  EXPECT_EQ(c->n_expert_used, 8u);
  EXPECT_EQ(c->n_expert_shared, 1u);
  EXPECT_EQ(c->n_ff_exp, 2048u);
  EXPECT_EQ(c->n_group, 8u);
  EXPECT_EQ(c->n_group_used, 4u);
  EXPECT_EQ(c->gating, engine::GatingFunc::kSigmoid);
  EXPECT_FLOAT_EQ(c->expert_weights_scale, 2.5f);
  EXPECT_FLOAT_EQ(c->rope_scaling_factor, 40.0f);
  EXPECT_EQ(c->rope_orig_context, 4096u);
  o.layers = 6;  // more layers are MoE layers after the 3 dense ones
  c = PresetConfig(o);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->n_leading_dense, 3u);
  o.layers = 2;  // fewer keep one MoE layer
  c = PresetConfig(o);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->n_leading_dense, 1u);
}

TEST_F(MakeModelTest, V4FlashSliceShapesAreV4Flash) {
  // docs/MODEL.md §11 and docs/GGUF.md §3.1: V4-Flash's values, with its layer pattern.
  MakeModelOptions o = Tiny("");
  o.preset = "v4flash-slice";
  auto c = PresetConfig(o);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->arch, "deepseek4");
  EXPECT_EQ(c->n_layer, 4u);
  EXPECT_EQ(c->n_embd, 4096u);
  EXPECT_EQ(c->n_head, 64u);
  EXPECT_EQ(c->q_lora_rank, 1024u);
  EXPECT_EQ(c->qk_rope, 64u);
  EXPECT_EQ(c->v4.head_dim, 512u);
  EXPECT_EQ(c->v4.sliding_window, 128u);
  EXPECT_EQ(c->v4.compress_ratios, (std::vector<uint32_t>{0, 0, 4, 128}));
  EXPECT_EQ(c->v4.o_groups, 8u);
  EXPECT_EQ(c->v4.o_lora_rank, 1024u);
  EXPECT_EQ(c->v4.index_heads, 64u);
  EXPECT_EQ(c->v4.index_dim, 128u);
  EXPECT_EQ(c->v4.index_topk, 512u);
  EXPECT_EQ(c->v4.hash_layers, 3u);
  EXPECT_EQ(c->n_expert, 256u);
  EXPECT_EQ(c->n_expert_used, 6u);
  EXPECT_EQ(c->n_expert_shared, 1u);
  EXPECT_EQ(c->n_ff_exp, 2048u);
  EXPECT_EQ(c->gating, engine::GatingFunc::kSqrtSoftplus);
  EXPECT_FLOAT_EQ(c->expert_weights_scale, 1.5f);
  EXPECT_EQ(c->hc_mult, 4u);
  EXPECT_EQ(PresetDefaultType("v4flash-slice"), GgmlType::kMXFP4);
  o.layers = 7;  // more layers continue Flash's pattern
  c = PresetConfig(o);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->v4.compress_ratios, (std::vector<uint32_t>{0, 0, 4, 128, 4, 128, 4}));
}

// Each type writes, reads back, and dequantises to values with the drawn statistics.
class MakeModelTypes : public MakeModelTest, public ::testing::WithParamInterface<GgmlType> {};

TEST_P(MakeModelTypes, WeightsHaveTheirDrawnStatistics) {
  MakeModelOptions o = Tiny(Path("typed.gguf"));
  o.type = GetParam();
  ASSERT_TRUE(MakeModel(o).ok());
  auto f = storage::ReadGgufFile(o.output);
  ASSERT_TRUE(f.ok());
  const storage::TensorInfo* t = f->FindTensor("blk.1.ffn_up_exps.weight");
  ASSERT_NE(t, nullptr);
  const GgmlType expect =
      StorageTypeFor(GetParam(), static_cast<int>(engine::TensorRole::kExpertStack), t->ne[0]);
  EXPECT_EQ(t->type, expect);
  auto file = storage::OpenFile(o.output);
  ASSERT_TRUE(file.ok());
  std::string raw(t->bytes, '\0');
  ASSERT_TRUE((*file)->ReadExact(t->file_offset, raw.size(), raw.data()).ok());
  std::vector<float> values(t->n_elements());
  const uint64_t rows = t->n_elements() / t->ne[0];
  for (uint64_t r = 0; r < rows; ++r) {
    engine::DequantizeRow(t->type, raw.data() + r * t->row_bytes(), static_cast<int64_t>(t->ne[0]),
                          values.data() + r * t->ne[0]);
  }
  double sum = 0, sq = 0;
  for (float v : values) {
    ASSERT_TRUE(std::isfinite(v));
    sum += v;
    sq += static_cast<double>(v) * v;
  }
  const double n = static_cast<double>(values.size());
  const double mean = sum / n, stddev = std::sqrt(sq / n - mean * mean);
  const double drawn = 1.0 / std::sqrt(static_cast<double>(t->ne[0]));  // 1/sqrt(fan_in)
  EXPECT_NEAR(mean, 0.0, drawn * 0.02);
  EXPECT_NEAR(stddev, drawn, drawn * 0.08);
  // Norm weights stay F32 and near 1.
  const storage::TensorInfo* norm = f->FindTensor("blk.0.attn_norm.weight");
  ASSERT_NE(norm, nullptr);
  EXPECT_EQ(norm->type, GgmlType::kF32);
}

INSTANTIATE_TEST_SUITE_P(Types, MakeModelTypes,
                         ::testing::Values(GgmlType::kF32, GgmlType::kF16, GgmlType::kBF16,
                                           GgmlType::kQ8_0, GgmlType::kQ4_0, GgmlType::kQ5_0,
                                           GgmlType::kQ4_K, GgmlType::kQ4_1, GgmlType::kQ5_1,
                                           GgmlType::kQ5_K, GgmlType::kQ6_K, GgmlType::kMXFP4),
                         [](const auto& param_info) {
                           return std::string(storage::TypeName(param_info.param));
                         });

TEST_F(MakeModelTest, KQuantRowsThatDoNotFitFallBackAsLlamaCppDoes) {
  const int matrix = static_cast<int>(engine::TensorRole::kMatrix);
  EXPECT_EQ(StorageTypeFor(GgmlType::kQ4_K, matrix, 1408), GgmlType::kQ5_0);
  EXPECT_EQ(StorageTypeFor(GgmlType::kQ4_K, matrix, 2048), GgmlType::kQ4_K);
  EXPECT_EQ(StorageTypeFor(GgmlType::kQ4_0, static_cast<int>(engine::TensorRole::kNorm), 2048),
            GgmlType::kF32);
  // MXFP4 files (V4's) keep only the routed experts in FP4 and the rest in Q8_0.
  const int experts = static_cast<int>(engine::TensorRole::kExpertStack);
  EXPECT_EQ(StorageTypeFor(GgmlType::kMXFP4, experts, 1408), GgmlType::kMXFP4);
  EXPECT_EQ(StorageTypeFor(GgmlType::kMXFP4, matrix, 2048), GgmlType::kQ8_0);
}

TEST_F(MakeModelTest, RoutingSkewFollowsZipf) {
  // The calibrated bias makes the most popular expert far more popular than uniform,
  // in the order the Zipf targets ask for.
  MakeModelOptions o = Tiny("");
  auto c = PresetConfig(o);
  ASSERT_TRUE(c.ok());
  c->n_vocab = 262;
  const engine::TensorSpec router{
      "blk.1.ffn_gate_inp.weight", {c->n_embd, c->n_expert}, engine::TensorRole::kRouter, 1};
  const std::vector<float> flat = CalibrateRouterBias(*c, router, 42, 0.0);
  EXPECT_TRUE(std::all_of(flat.begin(), flat.end(), [](float b) { return b == 0.0f; }));
  const std::vector<float> bias = CalibrateRouterBias(*c, router, 42, 1.5);
  ASSERT_EQ(bias.size(), c->n_expert);
  // Simulate fresh probes (not the calibration ones) and count selections.
  std::vector<double> count(c->n_expert, 0);
  Rng rng(999);
  const WeightInit init = InitFor(router, *c);
  std::vector<float> w(c->n_embd * c->n_expert), h(c->n_embd), s(c->n_expert);
  for (uint32_t e = 0; e < c->n_expert; ++e) GenerateRow(router, init, 42, e, &w[e * c->n_embd]);
  constexpr int kProbes = 2000;
  for (int p = 0; p < kProbes; ++p) {
    rng.FillNormal(h.data(), c->n_embd, 1.0f, 0.0f);
    for (uint32_t e = 0; e < c->n_expert; ++e) {
      float acc = 0;
      for (uint32_t i = 0; i < c->n_embd; ++i) acc += w[e * c->n_embd + i] * h[i];
      s[e] = 1.0f / (1.0f + std::exp(-acc)) + bias[e];
    }
    std::vector<uint32_t> idx(c->n_expert);
    std::iota(idx.begin(), idx.end(), 0);
    std::partial_sort(idx.begin(), idx.begin() + c->n_expert_used, idx.end(),
                      [&](uint32_t a, uint32_t b) { return s[a] > s[b]; });
    for (uint32_t k = 0; k < c->n_expert_used; ++k) count[idx[k]] += 1.0 / kProbes;
  }
  std::sort(count.begin(), count.end(), std::greater<>());
  const double uniform = static_cast<double>(c->n_expert_used) / c->n_expert;  // 0.25
  EXPECT_GT(count[0], 2.5 * uniform);  // Zipf 1.5 over 16 experts: top share ~0.95
  EXPECT_LT(count.back(), 0.5 * uniform);
}

TEST_F(MakeModelTest, BadOptionsNameTheFlag) {
  MakeModelOptions o = Tiny(Path("x.gguf"));
  o.preset = "huge";
  EXPECT_NE(MakeModel(o).status().message().find("--preset"), std::string::npos);
  o = Tiny(Path("x.gguf"));
  o.type = GgmlType::kTQ1_0;  // a type strata reads the size of but cannot write
  EXPECT_NE(MakeModel(o).status().message().find("--type"), std::string::npos);
  o = Tiny(Path("x.gguf"));
  o.experts = 6;  // not divisible by the 4 expert groups
  EXPECT_FALSE(MakeModel(o).ok());
  o = Tiny(Path("x.gguf"));
  o.routing_skew = -1;
  EXPECT_NE(MakeModel(o).status().message().find("--routing-skew"), std::string::npos);
  EXPECT_FALSE(std::filesystem::exists(Path("x.gguf")));
}

}  // namespace
}  // namespace strata::tools

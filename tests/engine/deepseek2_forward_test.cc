// The fast deepseek2 forward pass against the plain reference: for every weight type
// make-model writes, 64 greedy tokens (the reference teacher-forced on the fast path's
// choices) with stated bounds on |logit difference|; and the fast path's logits are
// bit-identical for any prefill chunking and any thread count.
//
// The stated bounds. Without rounding effects the paths agree to ~1e-6 (summation
// order only). Rarely, an activation lands within float rounding of an 8-bit rounding
// boundary and the two paths round it one code apart, or a 32-value block's scale lands
// within float rounding of an f16 rounding boundary (strata rounds those scales to f16,
// as ggml does, so that it multiplies the same numbers as llama.cpp) and the two paths
// scale that block 5e-4 apart; the KV cache then carries that
// forward, so over 64 greedy tokens the worst step may reach a few 1e-2; and when such a
// difference lands on two near-tied router scores, the two paths run different experts
// for that token and logits move by up to ~1 (worst step bounded at 1.0). So the sharp check runs
// on short independent windows (a fresh sequence of 6 tokens each, so attention spans several
// positions and a flip cannot propagate): at least 10 of 16 windows must agree to 1e-4, which any
// real kernel or graph error would break in every window. Top-1 over the 64 greedy tokens must be
// identical at every step except where the reference's own top two logits are closer than that
// step's difference (a near-tie that no engine can call), at most four times.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cctype>
#include <cstring>
#include <filesystem>

#include "engine/session.h"
#include "storage/ggml_types.h"
#include "tests/engine/reference/deepseek2_reference.h"
#include "tests/engine/weight_types.h"
#include "tools/make_model.h"

namespace strata::engine {
namespace {

using storage::GgmlType;

std::string MakeModelFile(const std::string& preset, GgmlType type) {
  const std::string path = (std::filesystem::temp_directory_path() /
                            ("strata-fwd-" + std::to_string(::getpid()) + "-" + preset + "-" +
                             std::string(storage::TypeName(type)) + ".gguf"))
                               .string();
  if (std::filesystem::exists(path)) return path;
  tools::MakeModelOptions o;
  o.preset = preset;
  o.output = path;
  o.type = type;
  o.tokenizer = "none";
  o.progress = false;
  auto r = tools::MakeModel(o);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return path;
}

std::unique_ptr<DeepseekModel> LoadModel(const std::string& path) {
  auto file = ModelFile::Open(path);
  EXPECT_TRUE(file.ok()) << file.status().ToString();
  auto model = DeepseekModel::Load(std::move(*file));
  EXPECT_TRUE(model.ok()) << model.status().ToString();
  return std::move(*model);
}

int32_t Argmax(const std::vector<float>& v) {
  return static_cast<int32_t>(std::max_element(v.begin(), v.end()) - v.begin());
}

struct Agreement {
  int steps = 0;
  int top1_equal = 0;
  int near_ties = 0;
  double max_abs_diff = 0;
};

// Greedy decoding with the fast path; the reference is fed the same tokens
// (teacher-forced) and compared at every step.
Agreement CompareGreedy(const std::string& path, int steps, bool quantize_activations,
                        std::vector<int32_t> prompt = {256, 72, 101, 108, 108, 111}) {
  // The default prompt: BOS "Hello" in the byte vocabulary.
  auto model = LoadModel(path);
  auto ref_file = ModelFile::Open(path);
  testing::ReferenceDeepseek2 ref(**ref_file, model->config(), quantize_activations);
  Session session(*model, 512, GgmlType::kF32, {.threads = 2});
  std::vector<float> fast, slow;
  EXPECT_TRUE(session.Eval(prompt, &fast).ok());
  for (int32_t t : prompt) slow = ref.Forward(t);
  Agreement a;
  for (int step = 0; step < steps; ++step) {
    ++a.steps;
    double step_diff = 0;
    for (size_t i = 0; i < fast.size(); ++i) {
      step_diff = std::max(step_diff, std::fabs(static_cast<double>(fast[i]) - slow[i]));
    }
    a.max_abs_diff = std::max(a.max_abs_diff, step_diff);
    const int32_t next = Argmax(fast), ref_next = Argmax(slow);
    if (next == ref_next) {
      ++a.top1_equal;
    } else if (slow[ref_next] - slow[next] <= 2 * step_diff) {
      ++a.near_ties;
    }
    const int32_t one[] = {next};
    EXPECT_TRUE(session.Eval(one, &fast).ok());
    slow = ref.Forward(next);
  }
  return a;
}

// Independent windows: a fresh sequence of `len` tokens per window, compared at its end.
int CleanWindows(const std::string& path, bool quantize_activations, int windows, int len,
                 double* worst) {
  auto model = LoadModel(path);
  int clean = 0;
  *worst = 0;
  auto ref_file = ModelFile::Open(path);
  testing::ReferenceDeepseek2 ref(**ref_file, model->config(), quantize_activations);
  for (int w = 0; w < windows; ++w) {
    ref.Reset();
    Session session(*model, 64, GgmlType::kF32, {.threads = 2});
    std::vector<int32_t> tokens = {256};
    for (int i = 1; i < len; ++i) tokens.push_back((w * 53 + i * 29 + 7) % 256);
    std::vector<float> fast, slow;
    EXPECT_TRUE(session.Eval(tokens, &fast).ok());
    for (int32_t t : tokens) slow = ref.Forward(t);
    double diff = 0;
    for (size_t i = 0; i < fast.size(); ++i)
      diff = std::max(diff, std::fabs(double(fast[i]) - slow[i]));
    *worst = std::max(*worst, diff);
    clean += diff <= 1e-4 ? 1 : 0;
  }
  return clean;
}

void ExpectAgreement(const Agreement& a, const std::string& what, bool float_weights,
                     const std::string& path, bool check_windows = true, int min_clean = 10) {
  double window_worst = 0;
  const int clean = check_windows ? CleanWindows(path, !float_weights, 16, 6, &window_worst) : 16;
  std::printf(
      "[ %s ] windows within 1e-4: %d/16 (worst %.2e); 64 greedy: worst %.2e, "
      "top-1 equal %d/%d (+%d near-ties)\n",
      what.c_str(), clean, window_worst, a.max_abs_diff, a.top1_equal, a.steps, a.near_ties);
  if (check_windows) {
    EXPECT_GE(clean, float_weights ? 16 : min_clean) << what;
  }
  EXPECT_LE(a.max_abs_diff, float_weights ? 1e-4 : 1.0) << what;
  EXPECT_EQ(a.top1_equal + a.near_ties, a.steps) << what;
  EXPECT_LE(a.near_ties, 4) << what;
}

class ForwardVsReference : public ::testing::TestWithParam<GgmlType> {};

TEST_P(ForwardVsReference, TinyPreset64GreedyTokens) {
  // Float weights: against the pure f32 reference. Quantised weights: against the
  // reference with the same 8-bit activation rounding (see deepseek2_reference.h).
  const bool float_weights =
      GetParam() == GgmlType::kF32 || GetParam() == GgmlType::kF16 || GetParam() == GgmlType::kBF16;
  const std::string path = MakeModelFile("tiny", GetParam());
  const Agreement a = CompareGreedy(path, 64, !float_weights);
  ExpectAgreement(a, std::string(storage::TypeName(GetParam())), float_weights, path);
}

INSTANTIATE_TEST_SUITE_P(Types, ForwardVsReference, ::testing::ValuesIn(testing::kComputeTypes),
                         testing::TypeTestName);

TEST(ForwardVsReferenceSmall, Q4KSmallPreset) {
  const std::string path = MakeModelFile("small", GgmlType::kQ4_K);
  const Agreement a = CompareGreedy(path, 16, true);
  // 16x more activation values per step than tiny: a rounding-boundary flip lands in
  // most 6-token windows, so only the greedy checks apply here.
  ExpectAgreement(a, "small q4_K", false, path, /*check_windows=*/false);
}

std::vector<int32_t> TestPrompt(int length) {
  std::vector<int32_t> prompt;
  for (int i = 0; i < length; ++i) prompt.push_back((i * 37 + 11) % 256);
  return prompt;
}

// A prompt's logits (70 tokens by default) for every thread count and prefill chunk
// size given; each run must equal the first bit for bit. Returns the first run's logits.
std::vector<float> ExpectChunkingInvariant(const DeepseekModel& model,
                                           std::initializer_list<unsigned> thread_counts,
                                           std::initializer_list<int64_t> chunks,
                                           const std::string& what, int prompt_length = 70) {
  const std::vector<int32_t> prompt = TestPrompt(prompt_length);
  std::vector<float> expected;
  for (unsigned threads : thread_counts) {
    for (int64_t chunk : chunks) {
      Session session(model, 512, GgmlType::kF32, {.threads = threads});
      std::vector<float> logits;
      EXPECT_TRUE(session.Eval(prompt, &logits, chunk).ok());
      if (expected.empty()) {
        expected = logits;
      } else {
        EXPECT_EQ(logits, expected) << what << ": " << threads << " threads, chunks of " << chunk;
      }
    }
  }
  return expected;
}

TEST(Forward, ChunkingAndThreadsAreBitIdentical) {
  auto model = LoadModel(MakeModelFile("tiny", GgmlType::kQ4_K));
  ExpectChunkingInvariant(*model, {1u, 2u, 3u}, {1, 7, 64, 512}, "tiny");
}

TEST(Forward, F16CacheStaysClose) {
  // Float weights, so the only difference is the cache's f16 rounding.
  auto model = LoadModel(MakeModelFile("tiny", GgmlType::kF16));
  std::vector<int32_t> prompt = {256, 1, 2, 3, 4, 5, 6, 7, 8, 9};
  Session f32(*model, 64, GgmlType::kF32, {});
  Session f16(*model, 64, GgmlType::kF16, {});
  std::vector<float> a, b;
  ASSERT_TRUE(f32.Eval(prompt, &a).ok());
  ASSERT_TRUE(f16.Eval(prompt, &b).ok());
  double max_diff = 0;
  for (size_t i = 0; i < a.size(); ++i)
    max_diff = std::max(max_diff, std::fabs(double(a[i]) - b[i]));
  EXPECT_LT(max_diff, 5e-3);
  EXPECT_EQ(Argmax(a), Argmax(b));
}

TEST(Forward, BadInputIsAnErrorNotACrash) {
  auto model = LoadModel(MakeModelFile("tiny", GgmlType::kQ8_0));
  Session session(*model, 8, GgmlType::kF32, {});
  std::vector<float> logits;
  const int32_t bad[] = {262};
  EXPECT_EQ(session.Eval(bad, &logits).code(), StatusCode::kInvalidArgument);
  std::vector<int32_t> long_prompt(9, 5);
  Status s = session.Eval(long_prompt, &logits);
  EXPECT_EQ(s.code(), StatusCode::kResourceExhausted);
  EXPECT_NE(s.message().find("--ctx-size"), std::string::npos);
}

// engram-tiny: the tiny backbone with 4 mHC streams and Engram at layers 1 and 2.
std::string MakeEngramFile(const std::string& module, const std::string& encoding) {
  const std::string path = (std::filesystem::temp_directory_path() /
                            ("strata-fwd-" + std::to_string(::getpid()) + "-engram-" + module +
                             "-" + encoding + ".gguf"))
                               .string();
  if (std::filesystem::exists(path)) return path;
  tools::MakeModelOptions o;
  o.preset = "engram-tiny";
  o.output = path;
  o.engram_module = module;
  o.engram_encoding = encoding;
  o.progress = false;
  auto r = tools::MakeModel(o);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return path;
}

struct EngramVariant {
  const char* module;
  const char* encoding;
};

class EngramVsReference : public ::testing::TestWithParam<EngramVariant> {};

TEST_P(EngramVsReference, EngramTiny64GreedyTokens) {
  // Q8_0 backbone (the preset's type), so the reference applies activation rounding.
  const std::string path = MakeEngramFile(GetParam().module, GetParam().encoding);
  const Agreement a = CompareGreedy(path, 64, true);
  ExpectAgreement(a, std::string("engram-tiny ") + GetParam().module + " " + GetParam().encoding,
                  false, path);
}

INSTANTIATE_TEST_SUITE_P(
    Variants, EngramVsReference,
    ::testing::Values(EngramVariant{"v41", "e4m3_e8m0_32_row264"},
                      EngramVariant{"v41", "q4_k_row144"}, EngramVariant{"v41", "f16"},
                      EngramVariant{"demo", "e4m3_e8m0_32_row264"},
                      EngramVariant{"demo", "bf16"}),
    [](const auto& variant) {
      std::string name = std::string(variant.param.module) + "_" + variant.param.encoding;
      for (char& ch : name) ch = std::isalnum(static_cast<unsigned char>(ch)) ? ch : '_';
      return name;
    });

TEST(Forward, EngramChunkingAndThreadsAreBitIdentical) {
  // The demo form carries conv state across chunks; both forms carry hash history.
  for (const char* module : {"v41", "demo"}) {
    auto model = LoadModel(MakeEngramFile(module, "e4m3_e8m0_32_row264"));
    const std::vector<float> expected = ExpectChunkingInvariant(*model, {1u, 2u}, {1, 7, 64}, module);
    // Reset forgets the hash history and conv state: the same prompt again agrees.
    std::vector<int32_t> prompt;
    for (int i = 0; i < 70; ++i) prompt.push_back((i * 37 + 11) % 256);
    Session session(*model, 128, GgmlType::kF32, {.threads = 2});
    std::vector<float> logits;
    ASSERT_TRUE(session.Eval(prompt, &logits).ok());
    session.Reset();
    ASSERT_TRUE(session.Eval(prompt, &logits).ok());
    EXPECT_EQ(logits, expected) << module;
  }
}

// v4-tiny: DeepSeek-V4 at test size. Layers: window-only, CSA, HCA, CSA (window 32,
// indexer top-8); the first two route by tid2eid. A 200-token prompt crosses the HCA
// window (128) and gives the indexer more CSA entries than its top-k, so the greedy
// steps attend every kind of key.
std::string MakeV4File(GgmlType type) {
  return MakeModelFile("v4-tiny", type);
}

class V4VsReference : public ::testing::TestWithParam<GgmlType> {};

TEST_P(V4VsReference, V4Tiny64GreedyTokensAfterALongPrompt) {
  const bool float_weights = GetParam() == GgmlType::kF32;
  const std::string path = MakeV4File(GetParam());
  std::vector<int32_t> prompt = TestPrompt(200);
  prompt[0] = 256;  // BOS
  const Agreement a = CompareGreedy(path, 64, !float_weights, prompt);
  // V4 rounds activations at more sites per layer than MLA (grouped output, q per
  // head), so more windows see a rounding flip (they differ by ~1e-2, the rest by
  // ~5e-7); with float weights every window and step must agree to 1e-4.
  ExpectAgreement(a, "v4-tiny " + std::string(storage::TypeName(GetParam())), float_weights, path,
                  true, 8);
}

INSTANTIATE_TEST_SUITE_P(Types, V4VsReference,
                         ::testing::Values(GgmlType::kF32, GgmlType::kQ8_0, GgmlType::kMXFP4),
                         testing::TypeTestName);

TEST(ForwardV4, ChunkingAndThreadsAreBitIdenticalAcrossCompressedWindows) {
  auto model = LoadModel(MakeV4File(GgmlType::kQ8_0));
  const std::vector<float> expected =
      ExpectChunkingInvariant(*model, {1u, 2u}, {1, 7, 64, 300}, "v4-tiny", 300);
  // Reset forgets the window, the compressors and their entries.
  Session session(*model, 512, GgmlType::kF32, {.threads = 2});
  std::vector<float> logits;
  ASSERT_TRUE(session.Eval(TestPrompt(100), &logits).ok());
  session.Reset();
  ASSERT_TRUE(session.Eval(TestPrompt(300), &logits, 64).ok());
  EXPECT_EQ(logits, expected);
}

TEST(ForwardV4, QueriesAttendTheHcaEntriesAndTheIndexersCsaChoice) {
  auto model = LoadModel(MakeV4File(GgmlType::kQ8_0));
  const V4Config& v = model->config().v4;
  Session session(*model, 512, GgmlType::kF32, {.threads = 2});
  std::vector<float> logits;
  const int64_t T = 300;
  ASSERT_TRUE(session.Eval(TestPrompt(static_cast<int>(T)), &logits, 64).ok());
  // From docs/MODEL.md §8.3: query p sees HCA entries w < (p+1)/128, and top-k of the CSA
  // entries w < (p+1)/4; the window holds min(p+1, W) keys.
  uint64_t window = 0, hca = 0, csa = 0;
  for (uint32_t il = 0; il < model->config().n_layer; ++il) {
    for (int64_t p = 0; p < T; ++p) {
      window += static_cast<uint64_t>(std::min<int64_t>(p + 1, v.sliding_window));
      if (v.ratio(il) == kHcaRatio) hca += static_cast<uint64_t>((p + 1) / kHcaRatio);
      if (v.ratio(il) == kCsaRatio) {
        csa += static_cast<uint64_t>(std::min<int64_t>((p + 1) / kCsaRatio, v.index_topk));
      }
    }
  }
  const V4Counters& got = session.v4_counters();
  EXPECT_EQ(got.window_keys, window);
  EXPECT_EQ(got.hca_entries, hca);
  EXPECT_EQ(got.csa_entries, csa);
  EXPECT_GT(hca, 0u);
  EXPECT_GT(csa, 0u);
}

TEST(ForwardV4, AFailedChunksCompressorWritesAreUndone) {
  // Feed 10 tokens, mark, feed 300 more (several windows), roll back: the compressor
  // then continues exactly as one that only saw the first 10.
  for (uint32_t ratio : {kCsaRatio, kHcaRatio}) {
    const uint32_t dim = 8, width = (ratio == kCsaRatio ? 2 : 1) * dim;
    std::vector<float> ape(static_cast<size_t>(ratio) * width), norm(dim, 1.0f);
    for (size_t i = 0; i < ape.size(); ++i) ape[i] = static_cast<float>(i % 7) * 0.1f;
    CompressorWeights w;
    w.ape = ape.data();
    w.norm = norm.data();
    const Rope rope(RopeParams{.n_dims = 4});
    auto row = [&](int64_t pos, int salt) {
      std::vector<float> r(width);
      for (uint32_t c = 0; c < width; ++c) r[c] = std::sin(0.37f * pos + 0.11f * c + salt);
      return r;
    };
    Compressor a(ratio, dim, 4), b(ratio, dim, 4);
    UndoLog undo, unused;
    auto feed = [&](Compressor& comp, UndoLog& log, int64_t from, int64_t to) {
      for (int64_t pos = from; pos < to; ++pos) {
        comp.Add(pos, row(pos, 0).data(), row(pos, 1).data(), w, 1e-6f, rope, log);
      }
    };
    feed(a, unused, 0, 10);
    feed(b, unused, 0, 10);
    undo.Clear();
    const int64_t mark = a.entries();
    feed(a, undo, 10, 310);
    ASSERT_GT(a.entries(), mark + 1);
    undo.Rollback();
    a.Truncate(mark);
    feed(a, unused, 10, 400);
    feed(b, unused, 10, 400);
    ASSERT_EQ(a.entries(), b.entries());
    for (int64_t e = 0; e < a.entries(); ++e) {
      EXPECT_EQ(0, std::memcmp(a.entry(e), b.entry(e), dim * sizeof(float))) << ratio << " " << e;
    }
  }
}

// Removes this process's generated models (strata-fwd-PID-*) when the binary exits.
class ForwardModelCleanup : public ::testing::Environment {
 public:
  void TearDown() override {
    const std::string prefix = "strata-fwd-" + std::to_string(::getpid()) + "-";
    for (const auto& e : std::filesystem::directory_iterator(std::filesystem::temp_directory_path())) {
      if (e.path().filename().string().starts_with(prefix)) std::filesystem::remove(e.path());
    }
  }
};
::testing::Environment* const kForwardCleanup =
    ::testing::AddGlobalTestEnvironment(new ForwardModelCleanup);

}  // namespace
}  // namespace strata::engine

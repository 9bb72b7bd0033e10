// One whole deepseek2 layer at real DeepSeek-V2-Lite shapes (hidden 2048, 16 heads,
// kv_lora 512, 64 experts top-6 + 2 shared, expert ffn 1408): decode of one token and
// prefill of 128, through a model of one dense and one MoE layer with a byte vocabulary
// (so the head is negligible). Reported per MoE-layer pass, with the active weight
// bytes it streams. Weight type from STRATA_BENCH_TYPE (default Q4_0).
// Run: build/release/bench/layer_bench
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <filesystem>
#include <memory>

#include "engine/session.h"
#include "storage/ggml_types.h"
#include "tools/make_model.h"

namespace {

using strata::storage::GgmlType;

const strata::engine::DeepseekModel& Model() {
  static std::unique_ptr<strata::engine::DeepseekModel> model = [] {
    const char* env = std::getenv("STRATA_BENCH_TYPE");
    const GgmlType type =
        strata::storage::GgmlTypeFromName(env ? env : "Q4_0").value_or(GgmlType::kQ4_0);
    const std::string path =
        (std::filesystem::temp_directory_path() /
         ("strata-layer-bench-" + std::string(strata::storage::TypeName(type)) + ".gguf"))
            .string();
    if (!std::filesystem::exists(path)) {
      strata::tools::MakeModelOptions o;
      o.preset = "v2lite";
      o.layers = 2;
      o.type = type;
      o.tokenizer = "none";
      o.output = path;
      o.progress = false;
      if (!strata::tools::MakeModel(o).ok()) std::abort();
    }
    auto file = strata::engine::ModelFile::Open(path);
    auto m = strata::engine::DeepseekModel::Load(std::move(*file));
    if (!m.ok()) std::abort();
    return std::move(*m);
  }();
  return *model;
}

void BM_DecodeToken(benchmark::State& state) {
  const auto& model = Model();
  strata::engine::Session session(model, 4096, GgmlType::kF16,
                                           {.threads = static_cast<unsigned>(state.range(0))});
  std::vector<float> logits;
  int32_t token = 65;
  for (auto _ : state) {
    if (session.n_past() + 1 >= 4096) session.Reset();
    (void)session.Eval(std::vector<int32_t>{token}, &logits);
    token = 65 + static_cast<int32_t>(session.n_past() % 26);
  }
  state.counters["tok/s"] =
      benchmark::Counter(static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_DecodeToken)->Arg(1)->Arg(2)->UseRealTime()->Unit(benchmark::kMillisecond);

void BM_Prefill128(benchmark::State& state) {
  const auto& model = Model();
  std::vector<int32_t> prompt(128);
  for (int i = 0; i < 128; ++i) prompt[i] = 32 + i % 90;
  std::vector<float> logits;
  for (auto _ : state) {
    strata::engine::Session session(model, 256, GgmlType::kF16,
                                             {.threads = static_cast<unsigned>(state.range(0))});
    (void)session.Eval(prompt, &logits);
  }
  state.counters["tok/s"] = benchmark::Counter(128.0 * static_cast<double>(state.iterations()),
                                               benchmark::Counter::kIsRate);
}
BENCHMARK(BM_Prefill128)->Arg(1)->Arg(2)->UseRealTime()->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();

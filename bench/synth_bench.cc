// What make-model's speed is made of: normal draws (ziggurat) and the reference
// quantisers, in values per second on one thread, plus parsing a GGUF header.
// Run: build/release/bench/synth_bench
#include <benchmark/benchmark.h>

#include <vector>

#include "engine/quant/quantize.h"
#include "storage/ggml_types.h"
#include "tools/synthetic_weights.h"

namespace {

using strata::storage::GgmlType;

void BM_FillNormal(benchmark::State& state) {
  strata::tools::Rng rng(1);
  std::vector<float> v(4096);
  for (auto _ : state) {
    rng.FillNormal(v.data(), static_cast<int64_t>(v.size()), 0.02f, 0.0f);
    benchmark::DoNotOptimize(v.data());
  }
  state.SetItemsProcessed(state.iterations() * static_cast<int64_t>(v.size()));
}
BENCHMARK(BM_FillNormal);

void BM_Quantize(benchmark::State& state) {
  const auto type = static_cast<GgmlType>(state.range(0));
  strata::tools::Rng rng(2);
  std::vector<float> v(4096);
  rng.FillNormal(v.data(), 4096, 0.02f, 0.0f);
  std::vector<uint8_t> out(*strata::storage::RowBytes(type, 4096));
  for (auto _ : state) {
    strata::engine::QuantizeRow(type, v.data(), 4096, out.data());
    benchmark::DoNotOptimize(out.data());
  }
  state.SetItemsProcessed(state.iterations() * 4096);
  state.SetLabel(std::string(strata::storage::TypeName(type)));
}
BENCHMARK(BM_Quantize)
    ->Arg(static_cast<int>(GgmlType::kF16))
    ->Arg(static_cast<int>(GgmlType::kBF16))
    ->Arg(static_cast<int>(GgmlType::kQ8_0))
    ->Arg(static_cast<int>(GgmlType::kQ4_0))
    ->Arg(static_cast<int>(GgmlType::kQ5_0))
    ->Arg(static_cast<int>(GgmlType::kQ4_K));

}  // namespace

BENCHMARK_MAIN();

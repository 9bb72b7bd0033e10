// Weight throughput of every matvec kernel (GB/s of weight bytes read), scalar and
// AVX2, on a matrix too large for the caches, next to a plain RAM read probe: on a
// memory-bound kernel the two numbers meet. One thread unless --threads is varied.
// BM_GgmlMatVec runs llama.cpp's own kernel (ggml's vec_dot from its prebuilt CPU
// backend, the variant ggml's loader picks; scripts/setup.sh fetches it) over the same
// matrix, one thread, row by row as ggml's mul_mat does for one token.
// Run: build/release/bench/kernels_bench [--benchmark_filter=...]
#include <benchmark/benchmark.h>

#include <cstring>
#include <vector>

#include "engine/kernels/matmul.h"
#include "tests/ggml/ggml_library.h"
#include "engine/quant/quantize.h"
#include "storage/ggml_types.h"
#include "tools/synthetic_weights.h"

namespace {

using strata::engine::ThreadPool;
using strata::engine::kernels::ActivationBuffer;
using strata::engine::kernels::Isa;
using strata::engine::kernels::WeightMatrix;
using strata::storage::GgmlType;

constexpr int64_t kCols = 4096;
constexpr int64_t kRows = 32768;  // 128M weights: 72 MB (Q4_0) to 512 MB (F32), past L3

struct Matrix {
  std::vector<uint8_t> bytes;
  WeightMatrix view;
};

const Matrix& GetMatrix(GgmlType type) {
  static std::vector<std::pair<GgmlType, Matrix>> cache;
  for (auto& [t, m] : cache) {
    if (t == type) return m;
  }
  Matrix m;
  const size_t row_bytes = *strata::storage::RowBytes(type, kCols);
  m.bytes.resize(row_bytes * kRows);
  std::vector<float> row(kCols);
  strata::tools::Rng rng(3);
  for (int64_t r = 0; r < kRows; ++r) {
    rng.FillNormal(row.data(), kCols, 0.02f, 0.0f);
    strata::engine::QuantizeRow(type, row.data(), kCols, &m.bytes[r * row_bytes]);
  }
  m.view = {type, kCols, kRows, m.bytes.data(), row_bytes};
  cache.emplace_back(type, std::move(m));
  return cache.back().second;
}

void BM_MatVec(benchmark::State& state) {
  const auto type = static_cast<GgmlType>(state.range(0));
  const auto isa = static_cast<Isa>(state.range(1));
  if (isa == Isa::kAvx2 && strata::engine::kernels::BestIsa() != Isa::kAvx2) {
    state.SkipWithError("no AVX2 on this CPU");
    return;
  }
  const Matrix& m = GetMatrix(type);
  ThreadPool pool(static_cast<unsigned>(state.range(2)));
  ActivationBuffer scratch;
  std::vector<float> x(kCols, 0.5f), y(kRows);
  for (auto _ : state) {
    strata::engine::kernels::MatVec(m.view, x.data(), y.data(), pool, isa, scratch);
    benchmark::DoNotOptimize(y.data());
  }
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(m.bytes.size()));
  state.SetLabel(std::string(strata::storage::TypeName(type)) + " " +
                 strata::engine::kernels::IsaName(isa) + " t" + std::to_string(state.range(2)));
}

void MatVecArgs(benchmark::internal::Benchmark* b) {
  for (GgmlType t :
       {GgmlType::kF32, GgmlType::kF16, GgmlType::kBF16, GgmlType::kQ8_0, GgmlType::kQ4_0,
        GgmlType::kQ4_1, GgmlType::kQ5_0, GgmlType::kQ5_1, GgmlType::kQ2_K, GgmlType::kQ3_K,
        GgmlType::kQ4_K, GgmlType::kQ5_K, GgmlType::kQ6_K, GgmlType::kMXFP4, GgmlType::kIQ1_S,
        GgmlType::kIQ1_M, GgmlType::kIQ2_XXS, GgmlType::kIQ2_XS, GgmlType::kIQ2_S,
        GgmlType::kIQ3_XXS, GgmlType::kIQ3_S, GgmlType::kIQ4_NL, GgmlType::kIQ4_XS}) {
    for (Isa isa : {Isa::kScalar, Isa::kAvx2}) {
      b->Args({static_cast<int64_t>(t), static_cast<int64_t>(isa), 1});
    }
    b->Args({static_cast<int64_t>(t), static_cast<int64_t>(Isa::kAvx2), 2});
  }
}
BENCHMARK(BM_MatVec)->Apply(MatVecArgs)->UseRealTime()->Unit(benchmark::kMillisecond);

void BM_GgmlMatVec(benchmark::State& state) {
  std::string error;
  const strata::testing::GgmlLibrary* lib = strata::testing::LoadGgml(&error);
  if (!lib) {
    state.SkipWithError(error.c_str());
    return;
  }
  const auto type = static_cast<GgmlType>(state.range(0));
  const Matrix& m = GetMatrix(type);
  const ggml_type_traits_cpu* cpu = lib->get_type_traits_cpu(static_cast<ggml_type>(type));
  const ggml_type vec_type = cpu->vec_dot_type;
  std::vector<float> x(kCols, 0.5f), y(kRows);
  std::vector<uint8_t> act(*strata::storage::RowBytes(static_cast<GgmlType>(vec_type), kCols));
  if (vec_type == GGML_TYPE_F32) {
    std::memcpy(act.data(), x.data(), act.size());
  } else {
    lib->get_type_traits_cpu(vec_type)->from_float(x.data(), act.data(), kCols);
  }
  for (auto _ : state) {
    for (int64_t r = 0; r < kRows; ++r) {
      cpu->vec_dot(static_cast<int>(kCols), &y[r], 0, m.view.row(r), 0, act.data(), 0, 1);
    }
    benchmark::DoNotOptimize(y.data());
  }
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(m.bytes.size()));
  state.SetLabel(std::string(strata::storage::TypeName(type)) + " ggml " + lib->cpu_variant);
}
BENCHMARK(BM_GgmlMatVec)
    ->ArgsProduct({{static_cast<int64_t>(GgmlType::kQ4_0), static_cast<int64_t>(GgmlType::kQ8_0),
                    static_cast<int64_t>(GgmlType::kQ4_K), static_cast<int64_t>(GgmlType::kQ2_K),
                    static_cast<int64_t>(GgmlType::kIQ1_S), static_cast<int64_t>(GgmlType::kIQ1_M),
                    static_cast<int64_t>(GgmlType::kIQ2_XXS), static_cast<int64_t>(GgmlType::kIQ2_XS),
                    static_cast<int64_t>(GgmlType::kIQ2_S), static_cast<int64_t>(GgmlType::kIQ3_XXS),
                    static_cast<int64_t>(GgmlType::kIQ3_S), static_cast<int64_t>(GgmlType::kIQ4_NL),
                    static_cast<int64_t>(GgmlType::kIQ4_XS)}})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

// Prefill's shape: one V2-Lite expert's gate (2048 -> 1408) against `tokens` tokens,
// the batch an expert sees in a 128-token chunk (~12) and more. Reported as weight
// GB/s times tokens, i.e. effective multiply-add throughput in weight bytes.
void BM_MatMul(benchmark::State& state) {
  const auto type = static_cast<GgmlType>(state.range(0));
  const int64_t tokens = state.range(1);
  const int64_t cols = 2048, rows = 1408;
  const size_t row_bytes = *strata::storage::RowBytes(type, cols);
  std::vector<uint8_t> bytes(row_bytes * rows);
  std::vector<float> row(cols);
  strata::tools::Rng rng(5);
  for (int64_t r = 0; r < rows; ++r) {
    rng.FillNormal(row.data(), cols, 0.02f, 0.0f);
    strata::engine::QuantizeRow(type, row.data(), cols, &bytes[r * row_bytes]);
  }
  const WeightMatrix w{type, cols, rows, bytes.data(), row_bytes};
  ThreadPool pool(static_cast<unsigned>(state.range(2)));
  ActivationBuffer scratch;
  std::vector<float> x(static_cast<size_t>(cols * tokens)), y(static_cast<size_t>(rows * tokens));
  rng.FillNormal(x.data(), cols * tokens, 1.0f, 0.0f);
  const Isa isa = strata::engine::kernels::BestIsa();
  for (auto _ : state) {
    strata::engine::kernels::MatMul(w, x.data(), tokens, y.data(), pool, isa, scratch);
    benchmark::DoNotOptimize(y.data());
  }
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(bytes.size()) * tokens);
  state.SetLabel(std::string(strata::storage::TypeName(type)) + " x" + std::to_string(tokens) +
                 " t" + std::to_string(state.range(2)));
}
BENCHMARK(BM_MatMul)
    ->ArgsProduct({{static_cast<int64_t>(GgmlType::kQ4_0), static_cast<int64_t>(GgmlType::kQ8_0),
                    static_cast<int64_t>(GgmlType::kQ4_K)},
                   {1, 4, 12, 64},
                   {1}})
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);

// RAM read bandwidth: sum a 256 MiB buffer (far beyond the caches).
void BM_RamRead(benchmark::State& state) {
  static std::vector<uint64_t> buf(size_t{256} << 17, 1);  // 256 MiB
  for (auto _ : state) {
    uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    for (size_t i = 0; i < buf.size(); i += 4) {
      s0 += buf[i];
      s1 += buf[i + 1];
      s2 += buf[i + 2];
      s3 += buf[i + 3];
    }
    benchmark::DoNotOptimize(s0 + s1 + s2 + s3);
  }
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(buf.size() * 8));
}
BENCHMARK(BM_RamRead)->UseRealTime()->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();

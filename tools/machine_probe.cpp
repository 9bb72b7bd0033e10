#include "tools/machine_probe.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <functional>
#include <memory>
#include <numeric>
#include <vector>

#include "engine/kernels/matmul.h"
#include "engine/quant/quantize.h"
#include "tiers/tensor_class.h"
#include "tools/synthetic_weights.h"
#include "util/huge_pages.h"

namespace strata::tools {
namespace {

using Clock = std::chrono::steady_clock;
using storage::GgmlType;

}  // namespace

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

double SecondsSince(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

double RamBandwidth(engine::ThreadPool& pool) {
  // 512 MiB, in huge pages as the weights are (util/huge_pages.h), freed on return.
  const size_t n = size_t{64} << 20;
  std::unique_ptr<uint8_t, decltype(&std::free)> mem(AllocateWeights(n * 8), &std::free);
  if (!mem) return 0;  // no memory to spare for the probe: no bandwidth bound
  auto* buf = reinterpret_cast<uint64_t*>(mem.get());
  std::fill_n(buf, n, uint64_t{1});
  std::vector<double> rates;
  for (int rep = 0; rep < 7; ++rep) {
    std::vector<uint64_t> sums(pool.num_threads() * 8, 0);
    const auto t0 = Clock::now();
    pool.ParallelFor(
        static_cast<int64_t>(n),
        [&](int64_t b, int64_t e) {
          uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
          for (int64_t i = b; i + 3 < e; i += 4) {
            s0 += buf[i];
            s1 += buf[i + 1];
            s2 += buf[i + 2];
            s3 += buf[i + 3];
          }
          sums[static_cast<size_t>(b * 8 % static_cast<int64_t>(sums.size()))] += s0 + s1 + s2 + s3;
        },
        4096);
    rates.push_back(static_cast<double>(n * 8) / SecondsSince(t0));
  }
  return *std::max_element(rates.begin(), rates.end());
}

double KernelRate(GgmlType type, engine::ThreadPool& pool) {
  const int64_t cols = 2048, rows = 4096;
  const size_t row_bytes = *storage::RowBytes(type, cols);
  std::vector<uint8_t> w(row_bytes * rows);
  std::vector<float> x(cols);
  Rng rng(5);
  for (int64_t r = 0; r < rows; ++r) {
    rng.FillNormal(x.data(), cols, 0.02f, 0.0f);
    engine::QuantizeRow(type, x.data(), cols, &w[r * row_bytes]);
  }
  rng.FillNormal(x.data(), cols, 1.0f, 0.0f);
  const engine::kernels::WeightMatrix m{type, cols, rows, w.data(), row_bytes};
  engine::kernels::ActivationBuffer scratch;
  std::vector<float> y(rows);
  std::vector<double> rates;
  for (int rep = 0; rep < 9; ++rep) {
    const auto t0 = Clock::now();
    for (int i = 0; i < 10; ++i) {
      engine::kernels::MatVec(m, x.data(), y.data(), pool, engine::kernels::BestIsa(), scratch);
    }
    rates.push_back(10.0 * static_cast<double>(w.size()) / SecondsSince(t0));
  }
  return *std::max_element(rates.begin(), rates.end());
}

DecodeCost EstimateDecodeCost(const storage::GgufFile& file, uint32_t top_k,
                              engine::ThreadPool& pool) {
  DecodeCost c;
  std::map<GgmlType, double> dense, experts;
  for (const auto& t : file.tensors()) {
    // A pack blob's bytes are its stacks', which are listed (as packed) too.
    if (storage::IsPackBlobName(t.name)) continue;
    switch (tiers::ClassifyTensor(t.name)) {
      case tiers::TensorClass::kPinnedDense:
        // A table no kernel multiplies (V4's tid2eid) is looked up: one row per token.
        dense[t.type] += static_cast<double>(engine::kernels::HasDot(t.type) ? t.bytes
                                                                              : t.row_bytes());
        break;
      case tiers::TensorClass::kRoutedExpert:
        experts[t.type] += static_cast<double>(t.expert_bytes()) * top_k;
        break;
      case tiers::TensorClass::kEmbedding:
        dense[t.type] += static_cast<double>(t.row_bytes());
        break;
      case tiers::TensorClass::kEngram:
        break;
    }
  }
  c.ram_bytes_per_s = RamBandwidth(pool);
  auto cost = [&](const std::map<GgmlType, double>& part, double* bytes) {
    double compute = 0;
    for (const auto& [type, b] : part) {
      if (engine::kernels::HasDot(type)) {
        if (!c.kernel_bytes_per_s.count(type)) c.kernel_bytes_per_s[type] = KernelRate(type, pool);
        compute += b / c.kernel_bytes_per_s[type];
      }
      c.active_bytes_by_type[type] += b;
      *bytes += b;
    }
    // Without a bandwidth (no memory to probe with) the bound is the compute time alone.
    return c.ram_bytes_per_s > 0 ? std::max(compute, *bytes / c.ram_bytes_per_s) : compute;
  };
  c.dense_s = cost(dense, &c.dense_bytes);
  c.expert_s = cost(experts, &c.expert_bytes);
  return c;
}

DecodePrediction PredictDecode(const tiers::ResidencyPlan& plan, const DecodeCost& cost,
                               const storage::DriveProfile& drive, std::span<const uint64_t> heat,
                               uint32_t engram_rows_per_token) {
  DecodePrediction p;
  const uint64_t cached = plan.cached_bundles();
  const bool engram_streamed = !plan.engram_tables.empty() && engram_rows_per_token > 0;
  if (plan.all_resident || cached == 0) {
    p.hit_rate = 1;
    p.basis = "all resident";
  } else {
    const uint64_t total_uses = std::accumulate(heat.begin(), heat.end(), uint64_t{0});
    if (total_uses > 0) {
      // The hottest cache-sized set of cached bundles (an LFU cache's steady state).
      std::vector<uint64_t> uses(heat.begin(), heat.end());
      uint64_t cached_uses = 0;
      std::sort(uses.begin(), uses.end(), std::greater<>());
      for (uint64_t i = 0; i < std::min<uint64_t>(plan.cache_slots, uses.size()); ++i)
        cached_uses += uses[i];
      p.hit_rate = static_cast<double>(cached_uses) / static_cast<double>(total_uses);
      p.basis = "heat profile (" + std::to_string(total_uses) + " uses)";
    } else {
      p.hit_rate = static_cast<double>(plan.cache_slots) / static_cast<double>(cached);
      p.basis = "uniform routing";
    }
    // Only the layers whose bundles are cached can miss.
    double cached_layer_share = 0;
    for (const tiers::MoeLayer& L : plan.moe_layers) cached_layer_share += L.pinned ? 0 : 1;
    cached_layer_share /= static_cast<double>(plan.moe_layers.size());
    const double demands =
        cost.expert_bytes / static_cast<double>(plan.moe_layers.front().bundle_bytes);
    p.miss_bytes_per_token = demands * cached_layer_share * (1 - p.hit_rate) *
                             static_cast<double>(plan.moe_layers.front().bundle_bytes);
  }
  if (engram_streamed) {
    p.basis += "; " + std::to_string(engram_rows_per_token) + " Engram rows/token read";
  }
  const bool reads = p.miss_bytes_per_token > 0 || engram_streamed;
  if (reads && (drive.seq_bytes_per_s <= 0 || (engram_streamed && drive.rand_4k_iops <= 0))) {
    p.basis += "; no drive measured: no speed predicted";
    return p;  // tok_per_s stays 0: without the drive, reads have no price
  }
  if (p.miss_bytes_per_token > 0) p.io_s = p.miss_bytes_per_token / drive.seq_bytes_per_s;
  if (engram_streamed) p.engram_io_s = engram_rows_per_token / drive.rand_4k_iops;
  p.tok_per_s = 1.0 / std::max(cost.dense_s + std::max(cost.expert_s, p.io_s), p.engram_io_s);
  return p;
}

}  // namespace strata::tools

#include "tools/bench.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>
#include <vector>

#include "engine/deepseek2_model.h"
#include "engine/kernels/matmul.h"
#include "engine/quant/quantize.h"
#include "tiers/tensor_class.h"
#include "tools/synthetic_weights.h"
#include "util/process_stats.h"
#include "util/size_parse.h"

namespace strata::tools {
namespace {

using Clock = std::chrono::steady_clock;
using storage::GgmlType;

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

double Since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

// RAM read bandwidth with `threads` threads summing disjoint parts of a 512 MiB buffer.
double RamBandwidth(engine::ThreadPool& pool) {
  static std::vector<uint64_t> buf(size_t{64} << 20, 1);  // 512 MiB
  std::vector<double> rates;
  for (int rep = 0; rep < 5; ++rep) {
    std::vector<uint64_t> sums(pool.num_threads() * 8, 0);
    const auto t0 = Clock::now();
    pool.ParallelFor(
        static_cast<int64_t>(buf.size()),
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
    rates.push_back(static_cast<double>(buf.size() * 8) / Since(t0));
  }
  return Median(rates);
}

// Kernel throughput (weight bytes per second) for `type` on a 2-32 MiB matrix that
// stays in L2/L3: what the arithmetic allows with little RAM traffic.
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
  for (int rep = 0; rep < 7; ++rep) {
    const auto t0 = Clock::now();
    for (int i = 0; i < 10; ++i) {
      engine::kernels::MatVec(m, x.data(), y.data(), pool, engine::kernels::BestIsa(), scratch);
    }
    rates.push_back(10.0 * static_cast<double>(w.size()) / Since(t0));
  }
  return Median(rates);
}

}  // namespace

Status RunBench(const BenchOptions& o) {
  if (o.model.empty()) return Status::InvalidArgument("bench: -m/--model is required");
  STRATA_ASSIGN_OR_RETURN(auto file, engine::ModelFile::Open(o.model));
  STRATA_ASSIGN_OR_RETURN(auto model, engine::Deepseek2Model::Load(std::move(file)));
  const auto& c = model->config();
  const auto& gguf = model->file().gguf();

  // Bytes one decode step reads, by weight type.
  std::map<GgmlType, double> active;
  for (const auto& t : gguf.tensors()) {
    switch (tiers::ClassifyTensor(t.name)) {
      case tiers::TensorClass::kPinnedDense:
        active[t.type] += static_cast<double>(t.bytes);
        break;
      case tiers::TensorClass::kRoutedExpert:
        active[t.type] += static_cast<double>(t.expert_bytes()) * c.n_expert_used;
        break;
      case tiers::TensorClass::kEmbedding:
        active[t.type] += static_cast<double>(t.row_bytes());
        break;
      case tiers::TensorClass::kEngram:
        break;
    }
  }
  double active_bytes = 0;
  for (const auto& [type, bytes] : active) active_bytes += bytes;

  engine::ThreadPool pool(o.threads);
  const double ram_bw = RamBandwidth(pool);
  double compute_seconds = 0;
  std::map<GgmlType, double> rates;
  for (const auto& [type, bytes] : active) {
    rates[type] = KernelRate(type, pool);
    compute_seconds += bytes / rates[type];
  }
  const double memory_seconds = active_bytes / ram_bw;
  const double decode_bound = 1.0 / std::max(memory_seconds, compute_seconds);

  // Prefill: n_prompt deterministic tokens, a fresh sequence each repetition.
  const uint32_t n_ctx = static_cast<uint32_t>(o.n_prompt + o.n_gen + 8);
  std::vector<int32_t> prompt(static_cast<size_t>(o.n_prompt));
  for (int32_t i = 0; i < o.n_prompt; ++i)
    prompt[i] = static_cast<int32_t>((i * 7919 + 13) % c.n_vocab);
  std::vector<double> pp, tg, ttft;
  std::vector<float> logits;
  for (int32_t rep = 0; rep < o.repetitions; ++rep) {
    engine::Deepseek2Session session(*model, n_ctx, GgmlType::kF16, {.threads = o.threads});
    auto t0 = Clock::now();
    if (o.n_prompt > 0) {
      STRATA_RETURN_IF_ERROR(session.Eval(prompt, &logits, o.batch_size));
      const double s = Since(t0);
      pp.push_back(o.n_prompt / s);
      ttft.push_back(s * 1000.0);
    }
    // Decode: n_gen greedy tokens after the prompt (or after one token).
    if (o.n_prompt == 0) STRATA_RETURN_IF_ERROR(session.Eval(std::vector<int32_t>{0}, &logits));
    t0 = Clock::now();
    for (int32_t i = 0; i < o.n_gen; ++i) {
      const auto next =
          static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
      STRATA_RETURN_IF_ERROR(session.Eval(std::vector<int32_t>{next}, &logits));
    }
    if (o.n_gen > 0) tg.push_back(o.n_gen / Since(t0));
  }
  const double pp_med = Median(pp), tg_med = Median(tg);

  if (o.json) {
    nlohmann::ordered_json j;
    j["model"] = o.model;
    j["threads"] = pool.num_threads();
    j["isa"] = engine::kernels::IsaName(engine::kernels::BestIsa());
    j["repetitions"] = o.repetitions;
    j["prefill"] = {{"tokens", o.n_prompt}, {"tok_per_s", pp_med}, {"runs", pp}};
    j["decode"] = {{"tokens", o.n_gen}, {"tok_per_s", tg_med}, {"runs", tg}};
    j["time_to_first_token_ms"] = Median(ttft);
    j["active_bytes_per_token"] = active_bytes;
    j["ram_read_bytes_per_s"] = ram_bw;
    auto& k = j["kernel_bytes_per_s"] = nlohmann::ordered_json::object();
    for (const auto& [type, rate] : rates) k[std::string(storage::TypeName(type))] = rate;
    j["decode_bound"] = {{"tok_per_s", decode_bound},
                         {"memory_s_per_token", memory_seconds},
                         {"compute_s_per_token", compute_seconds},
                         {"efficiency", tg_med / decode_bound}};
    j["peak_rss_bytes"] = PeakRssBytes();
    std::printf("%s\n", j.dump(2).c_str());
    return Status::Ok();
  }
  std::printf("model %s | %u threads (%s) | %d repetitions, medians\n", o.model.c_str(),
              pool.num_threads(), engine::kernels::IsaName(engine::kernels::BestIsa()),
              o.repetitions);
  std::printf("  %-10s %12s %14s\n", "test", "tok/s", "bound tok/s");
  if (o.n_prompt > 0) std::printf("  pp%-8d %12.2f %14s\n", o.n_prompt, pp_med, "-");
  if (o.n_gen > 0) {
    std::printf("  tg%-8d %12.2f %14.2f   (%.0f%% of bound)\n", o.n_gen, tg_med, decode_bound,
                100.0 * tg_med / decode_bound);
  }
  std::printf("  time to first token (pp%d): %.0f ms\n", o.n_prompt, Median(ttft));
  std::printf("  active bytes per token %s; RAM read %s/s -> %.1f ms; compute %.1f ms\n",
              FormatBytes(static_cast<uint64_t>(active_bytes)).c_str(),
              FormatBytes(static_cast<uint64_t>(ram_bw)).c_str(), memory_seconds * 1000,
              compute_seconds * 1000);
  for (const auto& [type, rate] : rates) {
    std::printf("    %-6s %s active, kernel %s/s\n", std::string(storage::TypeName(type)).c_str(),
                FormatBytes(static_cast<uint64_t>(active[type])).c_str(),
                FormatBytes(static_cast<uint64_t>(rate)).c_str());
  }
  std::printf("  peak RSS %s\n", FormatBytes(PeakRssBytes()).c_str());
  return Status::Ok();
}

}  // namespace strata::tools

#include "tools/bench.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <vector>

#include "engine/session.h"
#include "engine/tiered_model.h"
#include "engine/tokenizer/tokenizer.h"
#include "tiers/belady.h"
#include "tools/machine_probe.h"
#include "util/counters.h"
#include "util/log.h"
#include "util/process_stats.h"
#include "util/size_parse.h"

namespace strata::tools {
namespace {

using Clock = std::chrono::steady_clock;
using storage::GgmlType;

// Drops the page cache (root only). Returns false with a reason otherwise.
bool DropPageCache(std::string* why) {
  ::sync();
  std::ofstream f("/proc/sys/vm/drop_caches");
  if (!(f << "3" << std::flush)) {
    *why = "cannot write /proc/sys/vm/drop_caches (needs root)";
    return false;
  }
  return true;
}

// Bytes this process has caused to be read from storage (/proc/self/io read_bytes):
// for the mmap baseline, the page faults' reads, which no cache counter sees.
uint64_t StorageReadBytes() {
  std::ifstream in("/proc/self/io");
  std::string key;
  uint64_t value = 0;
  while (in >> key >> value) {
    if (key == "read_bytes:") return value;
  }
  return 0;
}

// Resets this process's peak RSS so each budget reports its own.
void ResetPeakRss() { std::ofstream("/proc/self/clear_refs") << "5"; }

struct Rep {
  double pp = 0, tg = 0, ttft_ms = 0;
  // Per decoded token, ms: attention, FFN work other than routed experts (dense FFN,
  // routers, shared experts, lookahead), routed experts, waiting for reads, head.
  double attn_ms = 0, ffn_ms = 0, experts_ms = 0, wait_ms = 0, head_ms = 0;
  double hit = 0, belady_hit = 0, mib_per_token = 0, stall_ms = 0, precision = 0, recall = 0;
  // Engram, per decoded token: row-cache hit rate, rows read, waits, module and mHC time.
  double engram_hit = 0, engram_rows = 0, engram_read_kib = 0, engram_stall_ms = 0, engram_ms = 0,
         hyper_ms = 0;
};

struct BudgetResult {
  std::string budget;
  std::string mode;
  std::vector<Rep> reps;
  uint64_t pinned_bytes = 0, cache_bytes = 0, kv_bytes = 0, cache_slots = 0, peak_rss = 0;
  uint64_t engram_cache_bytes = 0;  // 0: tables in RAM (or no Engram)
  double load_s = 0;
  Rep median;
};

Rep MedianOf(const std::vector<Rep>& reps) {
  auto med = [&](double Rep::*field) {
    std::vector<double> v;
    for (const Rep& r : reps) v.push_back(r.*field);
    return Median(v);
  };
  Rep m;
  // One line per field, as clang-format would put them, makes this list 20 lines long.
  // clang-format off
  for (double Rep::*f :
       {&Rep::pp, &Rep::tg, &Rep::ttft_ms, &Rep::hit, &Rep::belady_hit, &Rep::mib_per_token,
        &Rep::stall_ms, &Rep::precision, &Rep::recall, &Rep::attn_ms, &Rep::ffn_ms,
        &Rep::experts_ms, &Rep::wait_ms, &Rep::head_ms, &Rep::engram_hit, &Rep::engram_rows,
        &Rep::engram_read_kib, &Rep::engram_stall_ms, &Rep::engram_ms, &Rep::hyper_ms}) {
    // clang-format on
    m.*f = med(f);
  }
  return m;
}

// One repetition on an opened model, in steps so that --lockstep can alternate rows
// token by token: prefill, then greedy decode (each token timed on its own) with the
// tier counters and the expert trace taken over the decode only. With --parallel N,
// N sequences with their own prompts are prefilled one after another and each decode
// step runs one token of every sequence in one batched pass.
class Repetition {
 public:
  Repetition(engine::TieredModel& tm, const BenchOptions& o, prefetch::PrefetchMode prefetch_mode,
             const std::vector<int32_t>& text)
      : tm_(tm),
        o_(o),
        text_(text),
        n_seq_(std::max(o.parallel, 1u)),
        prompts_(n_seq_, std::vector<int32_t>(static_cast<size_t>(std::max(1, o.n_prompt)))),
        logits_(n_seq_),
        session_(tm.model(), static_cast<uint32_t>(o.n_prompt + o.n_gen + 8), GgmlType::kF16,
                 {.threads = o.threads, .prefetch = prefetch_mode, .lookahead = o.tiers.lookahead},
                 n_seq_) {
    const auto& c = tm.model().config();
    for (uint32_t s = 0; s < n_seq_; ++s) {
      for (size_t i = 0; i < prompts_[s].size(); ++i) {
        prompts_[s][i] = text.empty()
                             ? static_cast<int32_t>((i * 7919 + 13 + s * 104729) % c.n_vocab)
                             : text[TextOffset(s) + i];
      }
    }
  }

  // Where sequence `s` starts in --text: sequences read consecutive stretches.
  size_t TextOffset(uint32_t s) const {
    return static_cast<size_t>(s) * static_cast<size_t>(std::max(1, o_.n_prompt) + o_.n_gen);
  }

  Status Prefill() {
    const auto t0 = Clock::now();
    for (uint32_t s = 0; s < n_seq_; ++s) {
      STRATA_RETURN_IF_ERROR(session_.Eval(s, prompts_[s], &logits_[s], o_.batch_size));
      if (s == 0) r_.ttft_ms = SecondsSince(t0) * 1000;
    }
    const double prefill_s = SecondsSince(t0);
    r_.pp = static_cast<double>(prompts_[0].size() * n_seq_) / prefill_s;
    cache_before_ = tm_.cache().stats();
    trace_start_ = tm_.cache().trace_size();
    storage_before_ = StorageReadBytes();
    times_before_ = session_.timings();
    engram_before_ = tm_.engram_stats();
    return Status::Ok();
  }

  // Decodes the i-th token of every sequence: the greedy choice, or the text's next
  // token (teacher forcing).
  Status DecodeStep(int32_t i) {
    std::vector<uint32_t> seqs(n_seq_);
    std::vector<int32_t> next(n_seq_);
    for (uint32_t s = 0; s < n_seq_; ++s) {
      const std::vector<float>& l = logits_[s];
      seqs[s] = s;
      next[s] = text_.empty() ? static_cast<int32_t>(std::max_element(l.begin(), l.end()) - l.begin())
                              : text_[TextOffset(s) + prompts_[s].size() + static_cast<size_t>(i)];
    }
    const auto t0 = Clock::now();
    if (n_seq_ == 1) {
      STRATA_RETURN_IF_ERROR(session_.Eval(next, &logits_[0]));
    } else {
      STRATA_RETURN_IF_ERROR(session_.Step(seqs, next, &logits_));
    }
    decode_s_ += SecondsSince(t0);
    return Status::Ok();
  }

  Rep Finish() {
    Rep r = r_;
    const int64_t n = int64_t{o_.n_gen} * n_seq_;  // generated tokens, all sequences
    if (n <= 0) return r;
    r.tg = static_cast<double>(n) / decode_s_;
    const tiers::CacheStats s = tm_.cache().stats().Since(cache_before_);
    r.hit = s.hit_rate();
    const bool mapped = tm_.cache().options().mmap;
    const uint64_t bytes = mapped ? StorageReadBytes() - storage_before_ : s.bytes_read;
    r.mib_per_token = static_cast<double>(bytes) / (1 << 20) / static_cast<double>(n);
    r.stall_ms = static_cast<double>(s.stall_ns) * 1e-6 / static_cast<double>(n);
    const engine::SessionTimings t = CounterDelta(session_.timings(), times_before_);
    const double per = 1e-6 / static_cast<double>(n);
    r.attn_ms = double(t.attention_ns) * per;
    r.experts_ms = double(t.experts_ns) * per;
    r.wait_ms = double(t.wait_ns) * per;
    r.ffn_ms = double(t.feed_forward_ns) * per - r.experts_ms - r.wait_ms;
    r.head_ms = double(t.head_ns) * per;
    r.engram_ms = double(t.engram_ns) * per;
    r.hyper_ms = double(t.hyper_ns) * per;
    const tiers::EngramStats e = tm_.engram_stats().Since(engram_before_);
    r.engram_hit = e.hit_rate();
    r.engram_rows = static_cast<double>(e.misses) / static_cast<double>(n);
    r.engram_read_kib = static_cast<double>(e.bytes_read) / 1024 / static_cast<double>(n);
    r.engram_stall_ms = static_cast<double>(e.stall_ns) * 1e-6 / static_cast<double>(n);
    r.precision = s.prefetch_precision();
    r.recall = s.prefetch_recall();
    const std::vector<uint32_t> trace = tm_.cache().trace();
    const std::span<const uint32_t> decode_trace(trace.data() + trace_start_,
                                                 trace.size() - trace_start_);
    r.belady_hit =
        decode_trace.empty()
            ? 1.0
            : static_cast<double>(tiers::BeladyHits(decode_trace, tm_.plan().cache_slots)) /
                  static_cast<double>(decode_trace.size());
    return r;
  }

 private:
  engine::TieredModel& tm_;
  const BenchOptions& o_;
  const std::vector<int32_t>& text_;
  const uint32_t n_seq_;
  std::vector<std::vector<int32_t>> prompts_;
  std::vector<std::vector<float>> logits_;
  engine::Session session_;
  Rep r_;
  double decode_s_ = 0;
  tiers::CacheStats cache_before_;
  size_t trace_start_ = 0;
  uint64_t storage_before_ = 0;
  engine::SessionTimings times_before_;
  tiers::EngramStats engram_before_;
};

Result<Rep> RunOnce(engine::TieredModel& tm, const BenchOptions& o,
                    prefetch::PrefetchMode prefetch_mode, const std::vector<int32_t>& text) {
  Repetition rep(tm, o, prefetch_mode, text);
  STRATA_RETURN_IF_ERROR(rep.Prefill());
  for (int32_t i = 0; i < o.n_gen; ++i) STRATA_RETURN_IF_ERROR(rep.DecodeStep(i));
  return rep.Finish();
}

// One row of the table: a budget's model, opened (and re-opened for --cold), and what
// its repetitions measured.
struct BudgetRun {
  engine::TierOptions tier;
  std::unique_ptr<engine::TieredModel> tm;
  BudgetResult out;
};

void DropPageCacheIfCold(const BenchOptions& o) {
  if (!o.cold) return;
  std::string why;
  if (!DropPageCache(&why)) Log(LogModule::kTools).warn("--cold: {}", why);
}

Status OpenBudget(const BenchOptions& o, BudgetRun& b) {
  b.tm.reset();
  DropPageCacheIfCold(o);
  STRATA_ASSIGN_OR_RETURN(b.tm, engine::TieredModel::Open(o.model, b.tier));
  b.out.load_s = b.tm->load_seconds();
  // No --ram-budget, and the model did not fit: the row shows the budget chosen.
  if (b.out.budget == "unlimited" && b.tm->effective_budget() && !b.tier.mmap) {
    b.out.budget = "auto " + FormatBytes(b.tm->effective_budget());
  }
  return Status::Ok();
}

// Makes an opened row cold again for its next --cold repetition. A model without
// expert cache slots (every expert in RAM) only has its Engram row cache to empty;
// reopening it would also place every weight anew in memory, which on this VM moves
// decode speed by up to 20% from one opening to the next and drowns a difference of a
// few percent between rows. Models with expert cache slots or mapped are reopened.
Status MakeCold(const BenchOptions& o, BudgetRun& b) {
  if (b.tier.mmap || b.tm->plan().cache_slots > 0) return OpenBudget(o, b);
  DropPageCacheIfCold(o);
  if (tiers::EngramRowCache* rows = b.tm->engram_rows()) STRATA_RETURN_IF_ERROR(rows->Clear());
  return Status::Ok();
}

// Opens the model and, for warm runs, runs the untimed warm-up.
Status StartBudget(const BenchOptions& o, prefetch::PrefetchMode prefetch_mode,
                   const std::vector<int32_t>& text, BudgetRun& b) {
  b.tier.record_trace = true;
  STRATA_RETURN_IF_ERROR(OpenBudget(o, b));
  if (!o.cold) STRATA_RETURN_IF_ERROR(RunOnce(*b.tm, o, prefetch_mode, text).status());
  return Status::Ok();
}

Status RepeatBudget(const BenchOptions& o, prefetch::PrefetchMode prefetch_mode,
                    const std::vector<int32_t>& text, int32_t rep, BudgetRun& b) {
  if (o.cold && rep > 0) STRATA_RETURN_IF_ERROR(MakeCold(o, b));
  STRATA_ASSIGN_OR_RETURN(Rep r, RunOnce(*b.tm, o, prefetch_mode, text));
  b.out.reps.push_back(r);
  return Status::Ok();
}

void FinishBudget(const BenchOptions& o, BudgetRun& b) {
  BudgetResult& out = b.out;
  engine::TieredModel& tm = *b.tm;
  out.median = MedianOf(out.reps);
  out.mode = std::string(tm.cache().mode());
  out.pinned_bytes = tm.plan().pinned_dense_bytes;
  out.cache_bytes = tm.cache().resident_bytes();
  out.engram_cache_bytes = tm.plan().engram_cache_bytes;
  out.cache_slots = tm.plan().all_resident ? tm.plan().pinned_bundles : tm.plan().cache_slots;
  const auto& c = tm.model().config();
  out.kv_bytes =
      c.AttentionStateBytes(static_cast<uint64_t>(o.n_prompt + o.n_gen + 8), 2) * o.parallel;
  out.peak_rss = PeakRssBytes();
  tm.SaveHeat();
}

// One --lockstep repetition: every row's prefill in turn, then each decode step on every
// row before the next step, the order reversed every step (ABBA). A drift in the
// machine's speed slower than a few tokens then falls on every row alike, where
// alternating whole repetitions leaves each pair seconds apart. A row's Engram reads do
// not overlap another row's step: a session requests its rows when its own step starts
// and takes every one before it ends. Expert prefetches are issued within the step
// too, but one still in flight at its end may finish during the other row's step (the
// next step cancels those not started), which can flatter an expert-tiered row a little.
Status LockstepRepetition(const BenchOptions& o, prefetch::PrefetchMode prefetch_mode,
                          const std::vector<int32_t>& text, int32_t rep,
                          std::vector<BudgetRun>& runs) {
  const size_t n = runs.size();
  auto nth = [n](int32_t step, size_t i) { return step % 2 == 0 ? i : n - 1 - i; };
  if (o.cold && rep > 0) {
    for (BudgetRun& b : runs) STRATA_RETURN_IF_ERROR(MakeCold(o, b));
  }
  std::vector<std::unique_ptr<Repetition>> reps;
  for (BudgetRun& b : runs) {
    reps.push_back(std::make_unique<Repetition>(*b.tm, o, prefetch_mode, text));
  }
  for (size_t i = 0; i < n; ++i) STRATA_RETURN_IF_ERROR(reps[nth(rep, i)]->Prefill());
  for (int32_t step = 0; step < o.n_gen; ++step) {
    for (size_t i = 0; i < n; ++i) STRATA_RETURN_IF_ERROR(reps[nth(step, i)]->DecodeStep(step));
  }
  for (size_t i = 0; i < n; ++i) runs[i].out.reps.push_back(reps[i]->Finish());
  return Status::Ok();
}

// Runs every budget, one after another (each releases its memory before the next), or,
// with --interleave, all open at once with their repetitions alternating in ABBA
// order, so that a machine whose speed drifts (a shared VM, thermal limits) slows every
// row alike and the paired ratios between rows stay meaningful.
Result<std::vector<BudgetResult>> RunBudgets(const BenchOptions& o,
                                             prefetch::PrefetchMode prefetch_mode,
                                             const std::vector<int32_t>& text,
                                             std::vector<BudgetRun>& runs) {
  std::vector<BudgetResult> results;
  if (!o.interleave) {
    for (BudgetRun& b : runs) {
      ResetPeakRss();
      STRATA_RETURN_IF_ERROR(StartBudget(o, prefetch_mode, text, b));
      for (int32_t rep = 0; rep < o.repetitions; ++rep) {
        STRATA_RETURN_IF_ERROR(RepeatBudget(o, prefetch_mode, text, rep, b));
      }
      FinishBudget(o, b);
      b.tm.reset();
      results.push_back(std::move(b.out));
    }
    return results;
  }
  ResetPeakRss();
  for (BudgetRun& b : runs) STRATA_RETURN_IF_ERROR(StartBudget(o, prefetch_mode, text, b));
  for (int32_t rep = 0; rep < o.repetitions; ++rep) {
    if (o.lockstep) {
      STRATA_RETURN_IF_ERROR(LockstepRepetition(o, prefetch_mode, text, rep, runs));
      continue;
    }
    // Forward on even repetitions, backward on odd ones (ABBA): whatever the one before
    // leaves behind (caches, clocks, writeback) falls on every row alike.
    for (size_t i = 0; i < runs.size(); ++i) {
      BudgetRun& b = runs[rep % 2 == 0 ? i : runs.size() - 1 - i];
      STRATA_RETURN_IF_ERROR(RepeatBudget(o, prefetch_mode, text, rep, b));
    }
  }
  for (BudgetRun& b : runs) FinishBudget(o, b);  // peak RSS: the process's, all rows open
  for (BudgetRun& b : runs) results.push_back(std::move(b.out));
  return results;
}

// Interleaved rows against the first: the median over repetitions of row/first, each
// pair measured back to back.
struct PairedRatio {
  double median = 0, low = 0, high = 0;
};

PairedRatio PairedRatioOf(const BudgetResult& row, const BudgetResult& first, double Rep::*field) {
  std::vector<double> v;
  for (size_t k = 0; k < std::min(row.reps.size(), first.reps.size()); ++k) {
    if (first.reps[k].*field > 0) v.push_back(row.reps[k].*field / (first.reps[k].*field));
  }
  if (v.empty()) return {};
  return {Median(v), *std::min_element(v.begin(), v.end()), *std::max_element(v.begin(), v.end())};
}

}  // namespace

Status RunBench(const BenchOptions& options) {
  BenchOptions o = options;
  o.interleave |= o.lockstep;
  if (o.model.empty()) return Status::InvalidArgument("bench: -m/--model is required");
  if (o.repetitions < 1) return Status::InvalidArgument("-r/--repetitions must be at least 1");
  STRATA_ASSIGN_OR_RETURN(engine::TierOptions tier, ToTierOptions(o.tiers));
  // Each row's repetition holds one session of the prompt and the generated tokens.
  tier.session = engine::SessionShape{static_cast<uint32_t>(o.n_prompt + o.n_gen + 8),
                                      o.batch_size, GgmlType::kF16, o.threads, o.parallel};
  STRATA_ASSIGN_OR_RETURN(prefetch::PrefetchMode prefetch_mode, ToPrefetchMode(o.tiers));
  // A benchmark should not learn from itself unless asked: no profile by default.
  tier.use_profile = !o.tiers.profile.empty();
  STRATA_ASSIGN_OR_RETURN(storage::GgufFile gguf, storage::ReadGgufFile(o.model));
  STRATA_ASSIGN_OR_RETURN(engine::Deepseek2Config config, engine::Deepseek2Config::FromGguf(gguf));

  if (o.interleave && o.sweep.size() < 2) {
    return Status::InvalidArgument(std::string(o.lockstep ? "--lockstep" : "--interleave") +
                                   ": needs --sweep with at least two budgets");
  }
  std::vector<std::pair<std::string, engine::TierOptions>> runs;
  if (o.sweep.empty()) {
    const std::string label = tier.mmap              ? "page cache"
                              : tier.ram_budget_auto ? "auto"
                              : tier.ram_budget      ? FormatBytes(tier.ram_budget)
                                                     : "unlimited";
    runs.emplace_back(label, tier);
  }
  for (const std::string& text : o.sweep) {
    engine::TierOptions t = tier;
    t.ram_budget_auto = false;
    if (text == "unlimited" || text == "0") {
      t.ram_budget = 0;
      t.ram_budget_unlimited = true;
    } else {
      auto b = ParseSize(text);
      if (!b.ok()) return b.status().WithContext("--sweep");
      t.ram_budget = *b;
    }
    runs.emplace_back(t.ram_budget ? FormatBytes(t.ram_budget) : "unlimited", t);
  }

  engine::ThreadPool pool(o.threads);
  const DecodeCost cost = EstimateDecodeCost(gguf, config.n_expert_used, pool);
  const unsigned threads = pool.num_threads();
  storage::DriveProfile drive;
  const bool any_tiered = std::any_of(runs.begin(), runs.end(), [](const auto& r) {
    return r.second.ram_budget != 0 || r.second.ram_budget_auto || r.second.mmap;
  });
  if (any_tiered) {
    STRATA_ASSIGN_OR_RETURN(drive, storage::MeasureDrive(o.model));
  }
  std::vector<int32_t> text;
  if (!o.text.empty()) {
    std::ifstream in(o.text, std::ios::binary);
    std::string body((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    STRATA_ASSIGN_OR_RETURN(auto tokenizer, engine::Tokenizer::FromGguf(gguf));
    text = tokenizer->Encode(body, true, false);
    const size_t need = static_cast<size_t>(std::max(1, o.n_prompt) + o.n_gen) * o.parallel;
    if (text.size() < need) {
      return Status::InvalidArgument("--text " + o.text + ": " + std::to_string(text.size()) +
                                     " tokens, but (-p + -n) x --parallel needs " +
                                     std::to_string(need));
    }
  }
  std::vector<BudgetRun> budget_runs;
  for (const auto& [label, t] : runs) {
    budget_runs.push_back({.tier = t, .tm = nullptr, .out = {}});
    budget_runs.back().out.budget = label;
  }
  STRATA_ASSIGN_OR_RETURN(std::vector<BudgetResult> results,
                          RunBudgets(o, prefetch_mode, text, budget_runs));

  auto bound = [&](const BudgetResult& r) {
    // Expert bundles stream at the sequential rate; Engram rows are 4 KiB random reads.
    double disk_s =
        drive.seq_bytes_per_s > 0 ? r.median.mib_per_token * (1 << 20) / drive.seq_bytes_per_s : 0;
    if (drive.rand_4k_iops > 0) disk_s += r.median.engram_rows / drive.rand_4k_iops;
    // --parallel N: one step reads the weights once for N tokens, so compute allows
    // at most N tokens per compute_s (the routed experts' sharing makes it less).
    const double compute_per_token = cost.compute_s() / o.parallel;
    return std::pair(disk_s, 1.0 / std::max(compute_per_token, disk_s));
  };
  if (o.json) {
    nlohmann::ordered_json j;
    j["model"] = o.model;
    j["threads"] = threads;
    j["isa"] = engine::kernels::IsaName(engine::kernels::BestIsa());
    j["repetitions"] = o.repetitions;
    j["parallel"] = o.parallel;
    j["cold"] = o.cold;
    j["interleaved"] = o.interleave;
    j["lockstep"] = o.lockstep;
    j["io"] = o.tiers.io;
    j["prefetch"] = o.tiers.prefetch;
    j["machine"] = {{"ram_read_bytes_per_s", cost.ram_bytes_per_s},
                    {"drive_sequential_bytes_per_s", drive.seq_bytes_per_s},
                    {"drive_random_4k_iops", drive.rand_4k_iops}};
    auto& k = j["machine"]["kernel_bytes_per_s"] = nlohmann::ordered_json::object();
    for (const auto& [type, rate] : cost.kernel_bytes_per_s)
      k[std::string(storage::TypeName(type))] = rate;
    j["compute_s_per_token"] = {{"dense", cost.dense_s}, {"experts", cost.expert_s}};
    auto& arr = j["budgets"] = nlohmann::ordered_json::array();
    for (const BudgetResult& r : results) {
      const auto [disk_s, bound_tps] = bound(r);
      nlohmann::ordered_json reps = nlohmann::ordered_json::array();
      for (const Rep& x : r.reps) {
        reps.push_back({{"pp", x.pp},
                        {"tg", x.tg},
                        {"disk_mib_per_token", x.mib_per_token},
                        {"engram_rows_read_per_token", x.engram_rows}});
      }
      arr.push_back({{"budget", r.budget},
                     {"mode", r.mode},
                     {"prefill_tok_per_s", r.median.pp},
                     {"decode_tok_per_s", r.median.tg},
                     {"time_to_first_token_ms", r.median.ttft_ms},
                     {"expert_hit_rate", r.median.hit},
                     {"belady_hit_rate", r.median.belady_hit},
                     {"disk_mib_per_token", r.median.mib_per_token},
                     {"stall_ms_per_token", r.median.stall_ms},
                     {"prefetch_precision", r.median.precision},
                     {"prefetch_recall", r.median.recall},
                     {"peak_rss_bytes", r.peak_rss},
                     {"resident_bytes",
                      {{"pinned_dense", r.pinned_bytes},
                       {"expert_cache", r.cache_bytes},
                       {"kv_cache", r.kv_bytes}}},
                     {"cache_slots", r.cache_slots},
                     {"decode_ms_per_token",
                      {{"attention", r.median.attn_ms},
                       {"ffn_other", r.median.ffn_ms},
                       {"routed_experts", r.median.experts_ms},
                       {"waiting_for_reads", r.median.wait_ms},
                       {"head", r.median.head_ms}}},
                     {"engram",
                      {{"row_cache_bytes", r.engram_cache_bytes},
                       {"hit_rate", r.median.engram_hit},
                       {"rows_read_per_token", r.median.engram_rows},
                       {"kib_read_per_token", r.median.engram_read_kib},
                       {"stall_ms_per_token", r.median.engram_stall_ms},
                       {"module_ms_per_token", r.median.engram_ms},
                       {"mhc_ms_per_token", r.median.hyper_ms}}},
                     {"load_s", r.load_s},
                     {"bound",
                      {{"compute_s_per_token", cost.compute_s()},
                       {"disk_s_per_token", disk_s},
                       {"tok_per_s", bound_tps},
                       {"efficiency", r.median.tg / bound_tps}}},
                     {"runs", reps}});
      if (o.interleave && &r != &results.front()) {
        const PairedRatio tg = PairedRatioOf(r, results.front(), &Rep::tg);
        const PairedRatio pp = PairedRatioOf(r, results.front(), &Rep::pp);
        arr.back()["paired_ratio_to_first"] = {{"decode", tg.median},    {"decode_low", tg.low},
                                               {"decode_high", tg.high}, {"prefill", pp.median},
                                               {"prefill_low", pp.low},  {"prefill_high", pp.high}};
      }
    }
    std::printf("%s\n", j.dump(2).c_str());
    return Status::Ok();
  }
  std::printf("model %s | %u threads (%s) | %d repetitions, medians%s | %s | io %s | prefetch %s",
              o.model.c_str(), threads, engine::kernels::IsaName(engine::kernels::BestIsa()),
              o.repetitions,
              o.lockstep     ? ", interleaved token by token"
              : o.interleave ? ", interleaved"
                             : "",
              o.cold ? "cold" : "warm", o.tiers.io.c_str(), o.tiers.prefetch.c_str());
  if (o.parallel > 1) {
    std::printf(" | %u sequences decoding together: tg is their sum, per-token figures per "
                "generated token, ttft the first sequence's",
                o.parallel);
  }
  std::printf("\nmachine: RAM read %.1f GB/s", cost.ram_bytes_per_s / 1e9);
  if (any_tiered) {
    std::printf(" | drive %.2f GB/s sequential, %.1fk IOPS 4 KiB at depth %u%s",
                drive.seq_bytes_per_s / 1e9, drive.rand_4k_iops / 1e3, drive.rand_depth,
                drive.direct ? "" : " (buffered)");
  }
  std::printf("\ncompute bound: %.1f ms/token (dense %.1f + experts %.1f)", cost.compute_s() * 1e3,
              cost.dense_s * 1e3, cost.expert_s * 1e3);
  for (const auto& [type, rate] : cost.kernel_bytes_per_s) {
    std::printf(" | %s %.1f GB/s", std::string(storage::TypeName(type)).c_str(), rate / 1e9);
  }
  std::printf("\n\n%-10s %-10s %8s %8s %8s %7s %7s %9s %8s %6s %6s %9s %8s %5s %9s\n", "budget",
              "mode", "pp t/s", "tg t/s", "ttft ms", "hit", "belady", "MiB/tok", "stall ms", "prec",
              "recall", "bound t/s", "eff", "", "peak RSS");
  for (const BudgetResult& r : results) {
    const auto [disk_s, bound_tps] = bound(r);
    const Rep& m = r.median;
    std::printf(
        "%-10s %-10s %8.2f %8.2f %8.0f %6.1f%% %6.1f%% %9.1f %8.1f %6.2f %6.2f %9.2f %7.0f%% "
        "%5s %9s\n",
        r.budget.c_str(), r.mode.c_str(), m.pp, m.tg, m.ttft_ms, m.hit * 100, m.belady_hit * 100,
        m.mib_per_token, m.stall_ms, m.precision, m.recall, bound_tps, 100 * m.tg / bound_tps,
        disk_s > cost.compute_s() / o.parallel ? "disk" : "cpu", FormatBytes(r.peak_rss).c_str());
  }
  if (o.interleave) {
    std::printf("\ninterleaved: each row against [%s], median of %d %s pairs (range):",
                results.front().budget.c_str(), o.repetitions,
                o.lockstep ? "lockstep" : "back-to-back");
    for (size_t i = 1; i < results.size(); ++i) {
      const PairedRatio tg = PairedRatioOf(results[i], results.front(), &Rep::tg);
      const PairedRatio pp = PairedRatioOf(results[i], results.front(), &Rep::pp);
      std::printf("\n  [%s] decode %.3fx (%.3f-%.3f), prefill %.3fx (%.3f-%.3f)",
                  results[i].budget.c_str(), tg.median, tg.low, tg.high, pp.median, pp.low,
                  pp.high);
    }
    std::printf("\npeak RSS is the process's, with every row's model open at once\n");
  }
  std::printf("\ndecode ms/token: ");
  for (const BudgetResult& r : results) {
    const Rep& m = r.median;
    std::printf(
        "[%s] attention %.1f, dense/shared/routers %.1f, routed experts %.1f, waiting "
        "%.1f, head %.1f  ",
        r.budget.c_str(), m.attn_ms, m.ffn_ms, m.experts_ms, m.wait_ms, m.head_ms);
  }
  if (config.engram.enabled()) {
    std::printf("\nengram per token: ");
    for (const BudgetResult& r : results) {
      const Rep& m = r.median;
      if (r.engram_cache_bytes == 0) {
        std::printf("[%s] tables in RAM, module %.2f ms, mHC %.2f ms  ", r.budget.c_str(),
                    m.engram_ms, m.hyper_ms);
      } else {
        std::printf(
            "[%s] row cache %s: hit %.1f%%, %.1f rows read (%.1f KiB), stall %.2f ms, module "
            "%.2f ms, mHC %.2f ms  ",
            r.budget.c_str(), FormatBytes(r.engram_cache_bytes).c_str(), m.engram_hit * 100,
            m.engram_rows, m.engram_read_kib, m.engram_stall_ms, m.engram_ms, m.hyper_ms);
      }
    }
  }
  std::printf("\nresident: ");
  for (const BudgetResult& r : results) {
    std::printf("[%s] pinned %s + expert cache %s (%llu slots) + KV %s  ", r.budget.c_str(),
                FormatBytes(r.pinned_bytes).c_str(), FormatBytes(r.cache_bytes).c_str(),
                static_cast<unsigned long long>(r.cache_slots), FormatBytes(r.kv_bytes).c_str());
  }
  std::printf("\n");
  return Status::Ok();
}

}  // namespace strata::tools

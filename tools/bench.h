// `strata bench`: what a model runs at here, at one RAM budget or a sweep of them, and
// what this machine could do at best. For each budget: prefill (pp) and decode (tg)
// tok/s and time to first token as medians of repetitions; during decode, expert hit
// rate (and Belady's optimal hit rate at the same cache size, replayed from the
// recorded trace), disk MiB per token, stall ms per token, prefetch precision and
// recall; peak RSS and resident bytes by class; and the bound: the slower of computing
// (RAM bandwidth and kernel throughput probes) and reading the missed bytes at the
// drive's measured sequential rate, with efficiency = achieved / bound.
// --cold drops the page cache and starts from an empty expert cache every repetition;
// warm runs reuse one loaded model after an untimed warm-up. --interleave keeps every
// --sweep row's model open and alternates their repetitions, and prints each row's
// median paired ratio to the first: the fair comparison on a machine whose speed drifts.
// --lockstep goes further and alternates the rows token by token within a repetition.
// --parallel N runs N sequences (each its own prompt) and decodes them together, one
// token of each per step, as the server does: tg is their aggregate rate.
// Table or JSON.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "tools/tier_flags.h"
#include "util/status.h"

namespace strata::tools {

struct BenchOptions {
  std::string model;
  int32_t n_prompt = 512;
  int32_t n_gen = 128;
  int32_t repetitions = 3;
  int64_t batch_size = 512;
  unsigned threads = 0;
  bool json = false;
  bool cold = false;
  std::vector<std::string> sweep;  // budgets, one row each (instead of --ram-budget)
  bool interleave = false;         // --sweep rows open at once, repetitions alternating
  bool lockstep = false;           // --interleave token by token (implies interleave)
  std::string text;                // --text: real tokens instead of a synthetic sequence
  uint32_t parallel = 1;           // sequences decoding together (batched steps)
  TierFlags tiers;
};

Status RunBench(const BenchOptions& options);

}  // namespace strata::tools

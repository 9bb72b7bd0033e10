// What this machine can do, for the bounds `bench` and `plan` print: RAM read
// bandwidth, each weight type's kernel throughput on cache-resident data, and the
// per-token decode cost of a model split into its dense part (pinned weights every
// token touches) and its routed experts (top-k bundles per MoE layer); plus the decode
// speed a residency plan predicts from those and a drive profile.
#pragma once

#include <chrono>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "engine/thread_pool.h"
#include "storage/drive_probe.h"
#include "storage/gguf.h"
#include "tiers/residency_plan.h"

namespace strata::tools {

// The median of `v` (0 for none), and seconds since `t`: the probes' and bench's
// common arithmetic.
double Median(std::vector<double> v);
double SecondsSince(std::chrono::steady_clock::time_point t);

// Both probes report the best of their repetitions, not the median: they feed a bound
// (the fastest this machine can go), and on a shared VM a slow repetition says only
// that a neighbour was busy; medians of a few short runs moved by up to 2x between
// runs here, leaving measured speeds above the "bound".
// Bytes per second summing a 512 MiB buffer with the pool's threads (best of 7).
double RamBandwidth(engine::ThreadPool& pool);
// Weight bytes per second of a matvec of `type` on an L2/L3-resident matrix (best of 9).
double KernelRate(storage::GgmlType type, engine::ThreadPool& pool);

struct DecodeCost {
  double dense_bytes = 0;   // pinned bytes touched per token (all dense + one embedding row)
  double expert_bytes = 0;  // top-k bundles in every MoE layer
  double dense_s = 0;       // the slower of RAM and kernels for the dense part
  double expert_s = 0;      // the same for the routed experts
  double ram_bytes_per_s = 0;
  std::map<storage::GgmlType, double> kernel_bytes_per_s;
  std::map<storage::GgmlType, double> active_bytes_by_type;
  double compute_s() const { return dense_s + expert_s; }
};
DecodeCost EstimateDecodeCost(const storage::GgufFile& file, uint32_t top_k,
                              engine::ThreadPool& pool);

struct DecodePrediction {
  double hit_rate = 0;  // expected share of expert demands found resident
  double miss_bytes_per_token = 0;
  double io_s = 0;       // missed bytes at the drive's sequential rate
  double engram_io_s = 0;  // streamed Engram rows at the drive's random 4 KiB rate
  double tok_per_s = 0;  // 0: not predicted (misses but no drive profile)
  std::string basis;     // "uniform routing" or "heat profile (N uses)"
};
// Expected decode speed for `plan`: the dense part, then the experts' compute
// overlapped with reading the misses (arrival-order compute): t = dense + max(experts,
// io). Hit rate: the cache's share of bundles for uniform routing, or the share of
// uses the hottest cache-sized set of bundles covers in `heat` (one count per bundle,
// empty for none). Streamed Engram tables add `engram_rows_per_token` 4 KiB reads, all
// counted as misses (the row cache's hits depend on the text); they are issued when the
// token is known and overlap the whole step, so the step takes at least their time.
DecodePrediction PredictDecode(const tiers::ResidencyPlan& plan, const DecodeCost& cost,
                               const storage::DriveProfile& drive, std::span<const uint64_t> heat,
                               uint32_t engram_rows_per_token = 0);

}  // namespace strata::tools

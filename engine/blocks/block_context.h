// What the blocks of one session's graph share (docs/ARCHITECTURE.md "Session core,
// graphs and blocks"): the model, the thread pool, the ISA, the activation buffer of
// the matrix products, the normalised input of the sub-block that runs, the expert
// prefetcher and where the time goes. One per session, owned by the Session; blocks
// keep a reference. Thread-compatible.
#pragma once

#include <chrono>
#include <cstdint>
#include <span>
#include <vector>

#include "engine/deepseek_model.h"
#include "engine/kernels/matmul.h"
#include "engine/thread_pool.h"
#include "prefetch/prefetcher.h"

namespace strata::engine {

// Where a session's time went, summed over Eval calls (wall time on the calling
// thread; expert waits are the cache's stall, not counted here).
struct SessionTimings {
  uint64_t attention_ns = 0;
  uint64_t feed_forward_ns = 0;  // all FFNs: dense, routers, shared and routed experts, waits
  uint64_t experts_ns = 0;       // routed experts' compute
  uint64_t wait_ns = 0;          // waiting in ExpertCache::Next()
  uint64_t head_ns = 0;          // embedding, final norm and output head
  uint64_t engram_ns = 0;        // Engram modules, waits for rows included
  uint64_t hyper_ns = 0;         // mHC mixing
};

// The tokens one forward pass runs together: `n` of them from position `pos`.
struct Chunk {
  const int32_t* tokens = nullptr;
  int64_t n = 0;
  int64_t pos = 0;
};

// One sequence's share of a forward pass: the chunk of sequence `lane`, whose rows are
// [row, row + chunk.n) of the residual.
struct LaneChunk {
  uint32_t lane = 0;
  Chunk chunk;
  int64_t row = 0;
};

// What one forward pass runs: one chunk of one sequence (prefill, or a lone decode
// step), or one token of each of several sequences (a batched decode step). Attention
// and every per-sequence state see their lane's chunk; the FFN sees all rows at once,
// so a MoE layer loads the union of the rows' experts once and computes each expert
// for every row that chose it. `tokens` holds all rows' tokens in row order.
struct Batch {
  std::span<const LaneChunk> lanes;
  const int32_t* tokens = nullptr;
  int64_t n = 0;
  // Each row is one sequence's next token (a decode step): the prefetcher looks ahead.
  bool decode() const { return n == static_cast<int64_t>(lanes.size()); }
};

inline uint64_t NowNs() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                   std::chrono::steady_clock::now().time_since_epoch())
                                   .count());
}

// Adds the time between construction and destruction to `*sum`.
class ScopedTimer {
 public:
  explicit ScopedTimer(uint64_t* sum) : sum_(sum), start_(NowNs()) {}
  ~ScopedTimer() { *sum_ += NowNs() - start_; }
  ScopedTimer(const ScopedTimer&) = delete;
  ScopedTimer& operator=(const ScopedTimer&) = delete;

 private:
  uint64_t* sum_;
  uint64_t start_;
};

struct BlockContext {
  BlockContext(const DeepseekModel& m, unsigned threads, kernels::Isa isa_,
               prefetch::Prefetcher prefetcher_)
      : model(m), c(m.config()), pool(threads), isa(isa_), prefetcher(std::move(prefetcher_)) {}

  const DeepseekModel& model;
  const Deepseek2Config& c;
  ThreadPool pool;
  kernels::Isa isa;
  kernels::ActivationBuffer act;  // the matrix products' quantized activations
  std::vector<float> h;           // the running sub-block's normalised input [n][E]
  prefetch::Prefetcher prefetcher;
  SessionTimings timings;
};

}  // namespace strata::engine

// One sequence on a model: the session core, which knows no architecture
// (docs/ARCHITECTURE.md "Session core, graphs and blocks"). It validates tokens and the
// context, cuts a call into chunks (prefill runs a chunk as matrix-matrix products and
// each routed expert once for all the chunk's tokens that chose it; decode is a chunk
// of one), embeds, runs the graph's layers, takes the logits, and keeps the sequence
// state consistent: a chunk that fails (an expert or Engram read that failed for good)
// rolls the whole call back, position included. The layers come from the graph the
// registry builds for the file's architecture (engine/graphs/).
//
// DeepseekModel holds the weights (immutable, shareable); a Session holds one
// sequence's state (KV cache or V4 state, position, scratch) and is thread-compatible.
// Results are bit-identical for any thread count and any prefill chunking.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "engine/blocks/block_context.h"
#include "engine/blocks/residual.h"
#include "engine/deepseek_model.h"
#include "engine/graphs/graph.h"
#include "prefetch/prefetcher.h"
#include "util/status.h"

namespace strata::engine {

struct SessionOptions {
  unsigned threads = 0;  // 0: physical cores
  kernels::Isa isa = kernels::BestIsa();
  prefetch::PrefetchMode prefetch = prefetch::PrefetchMode::kAll;
  uint32_t lookahead = 2;  // MoE layers the prefetcher looks ahead
};

class Session {
 public:
  Session(const DeepseekModel& model, uint32_t n_ctx, storage::GgmlType kv_type,
          SessionOptions options);

  // Appends `tokens` at the current position, in chunks of at most `batch` tokens, and
  // writes the logits after the last token into `logits` (n_vocab values).
  // Errors: a token outside the vocabulary, a context that would overflow, an expert
  // read that failed for good (the session's position is then unchanged).
  Status Eval(std::span<const int32_t> tokens, std::vector<float>* logits, int64_t batch = 512);

  int64_t n_past() const { return n_past_; }
  // Whether Truncate works: no block keeps sequence state beyond the position (MLA's
  // latent rows past the position are simply overwritten). V4's compressors and
  // Engram's history cannot step back.
  bool can_truncate() const { return graph_->states().empty(); }
  // Forgets every token after the first `n`, so a new continuation can follow them.
  // REQUIRES: can_truncate(), 0 <= n <= n_past().
  void Truncate(int64_t n) { n_past_ = n; }
  uint32_t n_ctx() const { return n_ctx_; }
  void Reset();
  ThreadPool& pool() { return ctx_.pool; }
  const SessionTimings& timings() const { return ctx_.timings; }
  // What V4's attention attended (zeros for other architectures).
  const V4Counters& v4_counters() const;

 private:
  Status EvalChunk(const Chunk& chunk, bool want_logits, std::vector<float>* logits);

  BlockContext ctx_;
  const uint32_t n_ctx_;
  Residual residual_;
  std::unique_ptr<Graph> graph_;
  int64_t n_past_ = 0;
};

}  // namespace strata::engine

// Sequences on a model: the session core, which knows no architecture
// (docs/ARCHITECTURE.md "Session core, graphs and blocks"). It validates tokens and the
// context, cuts a call into chunks (prefill runs a chunk as matrix-matrix products and
// each routed expert once for all the chunk's tokens that chose it; decode is a chunk
// of one), embeds, runs the graph's layers, takes the logits, and keeps the sequence
// state consistent: a chunk that fails (an expert or Engram read that failed for good)
// rolls the whole call back, position included. The layers come from the graph the
// registry builds for the file's architecture (engine/graphs/).
//
// DeepseekModel holds the weights (immutable, shareable); a Session holds the state of
// `n_seq` sequences (KV cache or V4 state, position) and one set of scratch, thread
// pool and prefetcher, and is thread-compatible. Step() decodes one token of several
// sequences in one forward pass: each MoE layer loads the union of their experts once
// and computes each expert for all the rows that chose it, as a prefill chunk does.
// Results are bit-identical for any thread count, any prefill chunking, and whether
// a sequence's token ran alone or in a Step with others.
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
  // `n_seq` sequences of up to `n_ctx` tokens each.
  Session(const DeepseekModel& model, uint32_t n_ctx, storage::GgmlType kv_type,
          SessionOptions options, uint32_t n_seq = 1);

  // Appends `tokens` to sequence `seq` at its position, in chunks of at most `batch`
  // tokens, and writes the logits after the last token into `logits` (n_vocab values).
  // Errors: a token outside the vocabulary, a context that would overflow, an expert
  // read that failed for good (the sequence is then as it was before the call).
  Status Eval(uint32_t seq, std::span<const int32_t> tokens, std::vector<float>* logits,
              int64_t batch = 512);
  Status Eval(std::span<const int32_t> tokens, std::vector<float>* logits, int64_t batch = 512) {
    return Eval(0, tokens, logits, batch);
  }
  // Appends tokens[i] to sequence seqs[i], for every i, in one forward pass, and writes
  // the logits after each into (*logits)[i]. Errors as Eval's, plus a sequence listed
  // twice or out of range; on error no sequence has moved.
  Status Step(std::span<const uint32_t> seqs, std::span<const int32_t> tokens,
              std::vector<std::vector<float>>* logits);

  uint32_t n_seq() const { return static_cast<uint32_t>(n_past_.size()); }
  int64_t n_past(uint32_t seq = 0) const { return n_past_[seq]; }
  // Whether Truncate works: no block keeps sequence state beyond the position (MLA's
  // latent rows past the position are simply overwritten). V4's compressors and
  // Engram's history cannot step back.
  bool can_truncate() const { return !graph_->has_states(); }
  // Forgets every token of sequence `seq` after its first `n`, so a new continuation
  // can follow them. REQUIRES: can_truncate(), 0 <= n <= n_past(seq).
  void Truncate(uint32_t seq, int64_t n) { n_past_[seq] = n; }
  void Truncate(int64_t n) { Truncate(0, n); }
  uint32_t n_ctx() const { return n_ctx_; }
  // The state of sequence `seq` as bytes: every block's (the KV cache included) and the
  // position. LoadSequence puts such bytes back into any sequence of a session on the
  // same model with the same KV type and a context that holds them; the sequence then
  // continues bit for bit as the saved one would have. Errors (the sequence is then
  // reset): bytes of another shape, truncated, or longer than the context.
  std::vector<uint8_t> SaveSequence(uint32_t seq) const;
  Status LoadSequence(uint32_t seq, std::span<const uint8_t> bytes);
  // Starts sequence `seq` over.
  void Reset(uint32_t seq);
  // Starts every sequence over.
  void Reset();
  ThreadPool& pool() { return ctx_.pool; }
  const SessionTimings& timings() const { return ctx_.timings; }
  // What V4's attention attended (zeros for other architectures).
  const V4Counters& v4_counters() const;

 private:
  Status CheckTokens(std::span<const int32_t> tokens) const;
  // Runs the batch's layers; on success each lane's position advances by its chunk.
  // Every lane's state is checkpointed by the caller.
  Status Forward(const Batch& batch);

  BlockContext ctx_;
  const uint32_t n_ctx_;
  Residual residual_;
  std::unique_ptr<Graph> graph_;
  std::vector<int64_t> n_past_;  // per sequence
};

}  // namespace strata::engine

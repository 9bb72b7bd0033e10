// deepseek4 (DeepSeek-V4; docs/MODEL.md §7-9): per layer [Engram] -> V4 hybrid attention
// (sliding window, CSA with the lightning indexer, HCA) -> MoE (sqrt-softplus routing,
// hash-routed leading layers, clamped SwiGLU), both sub-blocks through mHC.
#pragma once

#include <memory>
#include <vector>

#include "engine/blocks/engram_block.h"
#include "engine/blocks/feed_forward.h"
#include "engine/blocks/v4_attention.h"
#include "engine/graphs/graph.h"

namespace strata::engine {

class Deepseek4Graph : public Graph {
 public:
  Deepseek4Graph(BlockContext& ctx, uint32_t n_ctx, uint32_t n_seq);

  Status Layer(uint32_t il, const Batch& batch, Residual& x) override;
  int64_t chunk_limit() const override;
  const V4Counters* v4_counters() const override;

 private:
  BlockContext& ctx_;
  std::vector<std::unique_ptr<V4Attention>> attention_;  // per sequence
  FeedForward ffn_;
  std::vector<std::unique_ptr<EngramBlock>> engram_;  // per sequence; none without Engram
  mutable V4Counters counters_;                        // the sequences' sum
};

}  // namespace strata::engine

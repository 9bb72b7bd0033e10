// deepseek4 (DeepSeek-V4; docs/MODEL.md §7-9): per layer [Engram] -> V4 hybrid attention
// (sliding window, CSA with the lightning indexer, HCA) -> MoE (sqrt-softplus routing,
// hash-routed leading layers, clamped SwiGLU), both sub-blocks through mHC.
#pragma once

#include <optional>

#include "engine/blocks/engram_block.h"
#include "engine/blocks/feed_forward.h"
#include "engine/blocks/v4_attention.h"
#include "engine/graphs/graph.h"

namespace strata::engine {

class Deepseek4Graph : public Graph {
 public:
  Deepseek4Graph(BlockContext& ctx, uint32_t n_ctx);

  Status Layer(uint32_t il, const Chunk& chunk, Residual& x) override;
  int64_t chunk_limit() const override;
  const V4Counters* v4_counters() const override { return &attention_.counters(); }

 private:
  BlockContext& ctx_;
  V4Attention attention_;
  FeedForward ffn_;
  std::optional<EngramBlock> engram_;
};

}  // namespace strata::engine

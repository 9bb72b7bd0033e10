// deepseek2 (DeepSeek-V2, V2-Lite, V3, R1, Kimi-K2; docs/MODEL.md §1-5) and
// deepseek2-engram, its Engram host (§10): per layer [Engram] -> MLA attention -> FFN
// (dense in the leading layers, MoE after), each sub-block at a residual site (mHC
// when the file has hyper-connections).
#pragma once

#include <memory>
#include <vector>

#include "engine/blocks/engram_block.h"
#include "engine/blocks/feed_forward.h"
#include "engine/blocks/mla_attention.h"
#include "engine/graphs/graph.h"

namespace strata::engine {

class Deepseek2Graph : public Graph {
 public:
  Deepseek2Graph(BlockContext& ctx, uint32_t n_ctx, storage::GgmlType kv_type, uint32_t n_seq);

  Status Layer(uint32_t il, const Batch& batch, Residual& x) override;
  int64_t chunk_limit() const override;

 private:
  BlockContext& ctx_;
  std::vector<std::unique_ptr<MlaAttention>> attention_;  // per sequence
  FeedForward ffn_;
  std::vector<std::unique_ptr<EngramBlock>> engram_;  // per sequence; none without Engram
};

}  // namespace strata::engine

#include "engine/graphs/deepseek2.h"

#include "engine/graphs/sequential_layer.h"

namespace strata::engine {

Deepseek2Graph::Deepseek2Graph(BlockContext& ctx, uint32_t n_ctx, storage::GgmlType kv_type,
                               uint32_t n_seq)
    : ctx_(ctx), ffn_(ctx) {
  for (uint32_t lane = 0; lane < n_seq; ++lane) {
    attention_.push_back(std::make_unique<MlaAttention>(ctx, n_ctx, kv_type));
    AddPersistent(lane, attention_.back().get());
    if (ctx.c.engram.enabled()) {
      engram_.push_back(std::make_unique<EngramBlock>(ctx));
      AddState(lane, engram_.back().get());
      AddPersistent(lane, engram_.back().get());
    }
  }
}

int64_t Deepseek2Graph::chunk_limit() const {
  return engram_.empty() ? Graph::chunk_limit() : engram_[0]->chunk_limit();
}

Status Deepseek2Graph::Layer(uint32_t il, const Batch& batch, Residual& x) {
  return SequentialLayer(ctx_, il, batch, x, attention_, ffn_, engram_);
}

}  // namespace strata::engine

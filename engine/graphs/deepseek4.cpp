#include "engine/graphs/deepseek4.h"

#include "engine/graphs/sequential_layer.h"

namespace strata::engine {

Deepseek4Graph::Deepseek4Graph(BlockContext& ctx, uint32_t n_ctx, uint32_t n_seq)
    : ctx_(ctx), ffn_(ctx) {
  for (uint32_t lane = 0; lane < n_seq; ++lane) {
    attention_.push_back(std::make_unique<V4Attention>(ctx, n_ctx));
    AddState(lane, attention_.back().get());
    AddPersistent(lane, attention_.back().get());
    if (ctx.c.engram.enabled()) {
      engram_.push_back(std::make_unique<EngramBlock>(ctx));
      AddState(lane, engram_.back().get());
      AddPersistent(lane, engram_.back().get());
    }
  }
}

int64_t Deepseek4Graph::chunk_limit() const {
  return engram_.empty() ? Graph::chunk_limit() : engram_[0]->chunk_limit();
}

const V4Counters* Deepseek4Graph::v4_counters() const {
  counters_ = {};
  for (const auto& a : attention_) counters_ += a->counters();
  return &counters_;
}

Status Deepseek4Graph::Layer(uint32_t il, const Batch& batch, Residual& x) {
  return SequentialLayer(ctx_, il, batch, x, attention_, ffn_, engram_);
}

}  // namespace strata::engine

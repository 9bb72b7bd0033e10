#include "engine/graphs/deepseek2.h"

namespace strata::engine {

Deepseek2Graph::Deepseek2Graph(BlockContext& ctx, uint32_t n_ctx, storage::GgmlType kv_type)
    : ctx_(ctx), attention_(ctx, n_ctx, kv_type), ffn_(ctx) {
  if (ctx.c.engram.enabled()) AddState(&engram_.emplace(ctx));
}

int64_t Deepseek2Graph::chunk_limit() const {
  return engram_ ? engram_->chunk_limit() : Graph::chunk_limit();
}

Status Deepseek2Graph::Layer(uint32_t il, const Chunk& chunk, Residual& x) {
  const DeepseekLayer& L = ctx_.model.layer(il);
  if (L.engram >= 0) {
    ScopedTimer timer(&ctx_.timings.engram_ns);
    STRATA_RETURN_IF_ERROR(engram_->Forward(il, chunk, x));
  }
  {
    ScopedTimer timer(&ctx_.timings.attention_ns);
    STRATA_RETURN_IF_ERROR(x.Site(L.hc_attn, chunk.n, [&](const float* in, float* out) {
      attention_.Forward(il, chunk, in, out);
      return Status::Ok();
    }));
  }
  ScopedTimer timer(&ctx_.timings.feed_forward_ns);
  return x.Site(L.hc_ffn, chunk.n,
                [&](const float* in, float* out) { return ffn_.Forward(il, chunk, in, out); });
}

}  // namespace strata::engine

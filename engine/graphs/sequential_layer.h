// The layer shape deepseek2 and deepseek4 share: [Engram] -> attention -> FFN, each
// sub-block at a residual site. Engram and attention keep per-sequence state, so each
// lane of the batch runs its own block over its own rows; the FFN is stateless and
// runs once over every row (a batched decode step loads each expert once).
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "engine/blocks/block_context.h"
#include "engine/blocks/engram_block.h"
#include "engine/blocks/feed_forward.h"
#include "engine/blocks/residual.h"
#include "util/status.h"

namespace strata::engine {

template <typename Attention>
Status SequentialLayer(BlockContext& ctx, uint32_t il, const Batch& batch, Residual& x,
                       const std::vector<std::unique_ptr<Attention>>& attention,
                       FeedForward& ffn, const std::vector<std::unique_ptr<EngramBlock>>& engram) {
  const DeepseekLayer& L = ctx.model.layer(il);
  const int64_t E = ctx.c.n_embd;
  if (L.engram >= 0) {
    ScopedTimer timer(&ctx.timings.engram_ns);
    for (const LaneChunk& part : batch.lanes) {
      STRATA_RETURN_IF_ERROR(engram[part.lane]->Forward(il, part.chunk, part.row, x));
    }
  }
  {
    ScopedTimer timer(&ctx.timings.attention_ns);
    STRATA_RETURN_IF_ERROR(x.Site(L.hc_attn, batch.n, [&](const float* in, float* out) {
      for (const LaneChunk& part : batch.lanes) {
        attention[part.lane]->Forward(il, part.chunk, in + part.row * E, out + part.row * E);
      }
      return Status::Ok();
    }));
  }
  ScopedTimer timer(&ctx.timings.feed_forward_ns);
  return x.Site(L.hc_ffn, batch.n,
                [&](const float* in, float* out) { return ffn.Forward(il, batch, in, out); });
}

}  // namespace strata::engine

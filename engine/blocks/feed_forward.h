// The FFN of a layer (docs/MODEL.md §4-5, §9): a dense SwiGLU in the leading layers,
// else MoE. A MoE chunk routes every token (engine/blocks/moe_router.h), demands the
// union of its experts from the expert cache at once, computes the shared experts
// while those are read, then each routed expert once for all the tokens that chose it,
// in arrival order; each result lands in its (token, k) place, so the order never
// changes the sums. In decode, the routing goes to the prefetcher, which may ask this
// block (as its RouterOracle) for the next layers' routers applied to the same hidden
// state. V4's SwiGLU clamps apply when the layer has them.
#pragma once

#include <cstdint>
#include <vector>

#include "engine/blocks/block_context.h"
#include "engine/blocks/moe_router.h"
#include "prefetch/prefetcher.h"
#include "util/status.h"

namespace strata::engine {

class FeedForward : private prefetch::RouterOracle {
 public:
  explicit FeedForward(BlockContext& ctx) : ctx_(ctx), router_(ctx.c) {}

  // Layer `il`'s FFN for the batch's rows: reads `in` [n][E], writes `out` [n][E].
  // Fails when an expert read failed for good (every demanded bundle is still drained).
  Status Forward(uint32_t il, const Batch& batch, const float* in, float* out);

 private:
  Status Moe(uint32_t il, const Batch& batch, float* out);
  // The router of `layer` applied to each decode row's hidden state (ctx_.h): the
  // union of their picks.
  std::vector<int32_t> Predict(uint32_t layer) override;
  void ExpertSwiGlu(const DeepseekLayer& L, const tiers::ExpertView& v, const float* x, int64_t n,
                    float* out);
  void SwiGlu(const kernels::WeightMatrix& gate, const kernels::WeightMatrix& up,
              const kernels::WeightMatrix& down, int64_t ff, const float* x, int64_t n,
              float* out, float clamp = 0);

  BlockContext& ctx_;
  MoeRouter router_;
  int64_t predict_rows_ = 1;  // the decode rows Predict routes
};

}  // namespace strata::engine

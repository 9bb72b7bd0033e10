// The residual of a chunk, from the embedding to the logits: one stream of E values
// per token, or hc_mult streams under mHC (docs/MODEL.md §7). A sub-block runs at a
// site: straight (its output added to the stream), or through mHC (the streams
// collapsed into its input, then mixed and given its output with each stream's own
// weight). Per token, so any thread count agrees. Thread-compatible.
#pragma once

#include <cstdint>
#include <vector>

#include "engine/blocks/block_context.h"
#include "engine/blocks/mhc.h"
#include "util/status.h"

namespace strata::engine {

class Residual {
 public:
  explicit Residual(BlockContext& ctx) : ctx_(ctx), hc_(ctx.c.hc_mult) {}

  // Every stream of each token starts as the token's embedding.
  void Embed(const Chunk& chunk);
  // Runs `sub_block(in, out)` at `site`: it reads `in` [n][E] and writes `out` [n][E].
  template <typename SubBlock>
  Status Site(const HcSite& site, int64_t n, SubBlock&& sub_block);
  // The logits after rows [first, first + k), into `out` [k][n_vocab]: streams
  // collapsed by the hyper head, final norm, output head (read once for all k).
  void Logits(int64_t first, int64_t k, float* out);

  uint32_t hc() const { return hc_; }
  // Token t's streams, [hc][E].
  float* streams(int64_t t) { return &x_[static_cast<size_t>(t * hc_ * ctx_.c.n_embd)]; }

 private:
  void HyperIn(const HcSite& site, int64_t n);
  void HyperOut(int64_t n);

  BlockContext& ctx_;
  const uint32_t hc_;
  std::vector<float> x_, y_, site_in_;
  std::vector<HcMix> mix_;
};

template <typename SubBlock>
Status Residual::Site(const HcSite& site, int64_t n, SubBlock&& sub_block) {
  const int64_t E = ctx_.c.n_embd;
  y_.resize(static_cast<size_t>(n * E));
  if (hc_ == 1) {
    STRATA_RETURN_IF_ERROR(sub_block(static_cast<const float*>(x_.data()), y_.data()));
    for (int64_t i = 0; i < n * E; ++i) x_[i] += y_[i];
    return Status::Ok();
  }
  HyperIn(site, n);
  STRATA_RETURN_IF_ERROR(sub_block(static_cast<const float*>(site_in_.data()), y_.data()));
  HyperOut(n);
  return Status::Ok();
}

}  // namespace strata::engine

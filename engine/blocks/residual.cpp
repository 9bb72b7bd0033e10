#include "engine/blocks/residual.h"

#include <algorithm>

#include "engine/kernels/vector_ops.h"
#include "engine/quant/quantize.h"

namespace strata::engine {

void Residual::Embed(const Chunk& chunk) {
  const int64_t E = ctx_.c.n_embd, n = chunk.n;
  x_.resize(static_cast<size_t>(n * hc_ * E));
  const kernels::WeightMatrix& embd = ctx_.model.token_embd();
  for (int64_t t = 0; t < n; ++t) {
    float* X = streams(t);
    DequantizeRow(embd.type, embd.row(chunk.tokens[t]), E, X);
    for (uint32_t k = 1; k < hc_; ++k) std::copy_n(X, E, X + k * E);
  }
}

void Residual::HyperIn(const HcSite& site, int64_t n) {
  const int64_t E = ctx_.c.n_embd;
  ScopedTimer timer(&ctx_.timings.hyper_ns);
  const HcParams p = ctx_.model.hc_params();
  mix_.resize(static_cast<size_t>(n));
  site_in_.resize(static_cast<size_t>(n * E));
  ctx_.pool.ParallelFor(n, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) {
      const float* X = streams(t);
      ComputeHcMix(site, p, X, E, ctx_.isa, &mix_[t]);
      HcCollapse(mix_[t].pre, X, hc_, E, &site_in_[t * E]);
    }
  });
}

void Residual::HyperOut(int64_t n) {
  const int64_t E = ctx_.c.n_embd;
  ScopedTimer timer(&ctx_.timings.hyper_ns);
  ctx_.pool.ParallelFor(n, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) HcExpand(mix_[t], hc_, &y_[t * E], E, streams(t));
  });
}

void Residual::Logits(int64_t first, int64_t k, float* out) {
  const int64_t E = ctx_.c.n_embd;
  std::vector<float> normed(static_cast<size_t>(k * E)), collapsed(static_cast<size_t>(E));
  for (int64_t r = 0; r < k; ++r) {
    const float* final_in = streams(first + r);
    if (hc_ > 1) {
      float pre[kMaxHyperStreams];
      ComputeHcHeadPre(ctx_.model.hc_head(), ctx_.model.hc_params(), final_in, E, ctx_.isa, pre);
      HcCollapse(pre, final_in, hc_, E, collapsed.data());
      final_in = collapsed.data();
    }
    kernels::RmsNorm(final_in, ctx_.model.output_norm(), E, ctx_.c.rms_eps, &normed[r * E]);
  }
  kernels::MatMul(ctx_.model.output(), normed.data(), k, out, ctx_.pool, ctx_.isa, ctx_.act);
}

}  // namespace strata::engine

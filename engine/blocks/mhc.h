// Manifold-constrained hyper-connections (mHC, docs/MODEL.md §7): the residual is
// n streams of E values. At each sub-block site, a small projection of the normalised
// streams gives `pre` (how the streams collapse into the sub-block's input), `post`
// (how much of the output each stream receives) and `comb` (how the streams mix),
// projected onto the doubly stochastic matrices by Sinkhorn iterations. All in fp32.
// Pure functions; thread-safe.
#pragma once

#include <cstdint>

#include "engine/kernels/kernels.h"
#include "engine/kernels/matmul.h"

namespace strata::engine {

inline constexpr uint32_t kMaxHyperStreams = 8;

// One site's weights: fn [n*E, (2+n)*n] (the head: [n*E, n]), base, scale [3] ([1]).
struct HcSite {
  kernels::WeightMatrix fn;
  const float* base = nullptr;
  const float* scale = nullptr;
};

struct HcParams {
  uint32_t n = 4;           // streams (hc_mult)
  uint32_t iters = 20;      // Sinkhorn iterations
  float eps = 1e-6f;        // hc_eps
  float rms_eps = 1e-6f;    // the model's RMSNorm epsilon (the unweighted norm of X)
};

struct HcMix {
  float pre[kMaxHyperStreams];
  float post[kMaxHyperStreams];
  float comb[kMaxHyperStreams * kMaxHyperStreams];  // comb[j * n + k]: stream j -> k
};

// The coefficients of one site for one token's streams X [n][E].
void ComputeHcMix(const HcSite& site, const HcParams& p, const float* X, int64_t E,
                  kernels::Isa isa, HcMix* mix);
// The hyper head's collapse weights (pre only) for the final norm.
void ComputeHcHeadPre(const HcSite& head, const HcParams& p, const float* X, int64_t E,
                      kernels::Isa isa, float* pre);
// out[E] = sum_k pre[k] X[k]
void HcCollapse(const float* pre, const float* X, uint32_t n, int64_t E, float* out);
// X'[k] = post[k] y + sum_j comb[j][k] X[j], in place (comb applied transposed).
void HcExpand(const HcMix& mix, uint32_t n, const float* y, int64_t E, float* X);

}  // namespace strata::engine

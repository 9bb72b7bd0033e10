#include "engine/blocks/feed_forward.h"

#include <algorithm>
#include <cmath>

#include "engine/kernels/vector_ops.h"

namespace strata::engine {

using kernels::RmsNorm;
using kernels::RowSlice;
using kernels::Silu;
using kernels::WeightMatrix;

void FeedForward::SwiGlu(const WeightMatrix& gate, const WeightMatrix& up,
                         const WeightMatrix& down, int64_t ff, const float* x, int64_t n,
                         float* out, float clamp) {
  const int64_t E = ctx_.c.n_embd;
  std::vector<float> g(static_cast<size_t>(n * ff)), u(static_cast<size_t>(n * ff));
  kernels::MatMulPair(RowSlice(gate, 0, ff), RowSlice(up, 0, ff), x, n, g.data(), u.data(),
                      ctx_.pool, ctx_.isa, ctx_.act);
  if (clamp > 0) {  // V4 (docs/MODEL.md §9): silu(min(gate, c)) * clamp(up, -c, c)
    for (int64_t i = 0; i < n * ff; ++i)
      g[i] = Silu(std::min(g[i], clamp)) * std::clamp(u[i], -clamp, clamp);
  } else {
    for (int64_t i = 0; i < n * ff; ++i) g[i] = Silu(g[i]) * u[i];
  }
  kernels::MatMul(RowSlice(down, 0, E), g.data(), n, out, ctx_.pool, ctx_.isa, ctx_.act);
}

Status FeedForward::Forward(uint32_t il, const Batch& batch, const float* in, float* out) {
  const DeepseekLayer& L = ctx_.model.layer(il);
  const int64_t E = ctx_.c.n_embd, n = batch.n;
  ctx_.h.resize(static_cast<size_t>(n * E));
  for (int64_t t = 0; t < n; ++t) RmsNorm(&in[t * E], L.ffn_norm, E, ctx_.c.rms_eps, &ctx_.h[t * E]);
  if (L.moe) return Moe(il, batch, out);
  SwiGlu(L.ffn_gate, L.ffn_up, L.ffn_down, ctx_.c.n_ff, ctx_.h.data(), n, out);
  return Status::Ok();
}

void FeedForward::ExpertSwiGlu(const DeepseekLayer& L, const tiers::ExpertView& v, const float* x,
                               int64_t n, float* out) {
  const int64_t E = ctx_.c.n_embd, Fe = ctx_.c.n_ff_exp;
  const WeightMatrix gate{L.gate_exps.type, E, Fe, v.gate, L.gate_exps.row_bytes};
  const WeightMatrix up{L.up_exps.type, E, Fe, v.up, L.up_exps.row_bytes};
  const WeightMatrix down{L.down_exps.type, Fe, E, v.down, L.down_exps.row_bytes};
  SwiGlu(gate, up, down, Fe, x, n, out, L.clamp_exp);
}

std::vector<int32_t> FeedForward::Predict(uint32_t layer) {
  const DeepseekLayer& N = ctx_.model.layer(layer);
  const int64_t X = ctx_.c.n_expert, n = predict_rows_;
  std::vector<float> logits(static_cast<size_t>(n * X));
  kernels::MatMul(N.router, ctx_.h.data(), n, logits.data(), ctx_.pool, ctx_.isa, ctx_.act);
  std::vector<int32_t> ids;
  for (int64_t t = 0; t < n; ++t) {
    const std::vector<int32_t> row = router_.Route(&logits[t * X], N.router_bias).ids;
    ids.insert(ids.end(), row.begin(), row.end());
  }
  return ids;
}

Status FeedForward::Moe(uint32_t il, const Batch& batch, float* out) {
  const Deepseek2Config& c = ctx_.c;
  const DeepseekLayer& L = ctx_.model.layer(il);
  const int64_t n = batch.n;
  const std::vector<float>& h = ctx_.h;
  const int64_t E = c.n_embd, X = c.n_expert, K = c.n_expert_used, Fe = c.n_ff_exp;
  std::vector<float> logits(static_cast<size_t>(n * X));
  kernels::MatMul(L.router, h.data(), n, logits.data(), ctx_.pool, ctx_.isa, ctx_.act);
  std::vector<RoutedExperts> routes(static_cast<size_t>(n));
  for (int64_t t = 0; t < n; ++t) {
    const int32_t* fixed = L.tid2eid ? &L.tid2eid[int64_t{batch.tokens[t]} * K] : nullptr;
    routes[t] = router_.Route(&logits[t * X], L.router_bias, fixed);
  }

  // Batch-union: each expert chosen in this chunk runs once over all its tokens.
  std::vector<std::vector<std::pair<int64_t, int64_t>>> users(static_cast<size_t>(X));
  for (int64_t t = 0; t < n; ++t) {
    for (int64_t k = 0; k < K; ++k) users[routes[t].ids[k]].emplace_back(t, k);
  }
  std::vector<int32_t> chosen;
  for (int32_t e = 0; e < X; ++e) {
    if (!users[e].empty()) chosen.push_back(e);
  }
  // Ask for the bundles first, so their reads overlap the shared expert and each
  // other; then look ahead for the next layers.
  tiers::ExpertCache* cache = ctx_.model.experts();
  if (cache) cache->Demand(il, chosen);
  if (batch.decode()) {
    std::vector<int32_t> picked;
    for (const RoutedExperts& r : routes) picked.insert(picked.end(), r.ids.begin(), r.ids.end());
    predict_rows_ = n;
    ctx_.prefetcher.OnRouted(il, picked, *this);
  }
  std::vector<float> shared(static_cast<size_t>(n * E), 0.0f);
  if (c.n_expert_shared > 0) {
    SwiGlu(L.gate_shexp, L.up_shexp, L.down_shexp, Fe * c.n_expert_shared, h.data(), n,
           shared.data(), L.clamp_shexp);
  }
  // Experts in arrival order: what is resident computes while the rest is read.
  // Each result lands in its (token, k) place, so the order does not change the sums.
  std::vector<float> expert_out(static_cast<size_t>(n * K * E));
  std::vector<float> xs, ys;
  Status failed;
  for (size_t i = 0; i < chosen.size(); ++i) {
    int32_t e = chosen[i];
    tiers::ExpertView view;
    tiers::ExpertPin pin;
    if (cache) {
      const uint64_t w0 = NowNs();
      Result<tiers::ExpertPin> next = cache->Next();
      ctx_.timings.wait_ns += NowNs() - w0;
      if (!next.ok()) {
        if (failed.ok()) failed = next.status();
        continue;  // keep draining: every demanded bundle must be handed out
      }
      pin = std::move(next).value();
      e = static_cast<int32_t>(pin.expert());
      view = pin.view();
    } else {
      view = {L.gate_exps.row(e * Fe), L.up_exps.row(e * Fe), L.down_exps.row(e * E)};
    }
    if (!failed.ok()) continue;
    const auto& who = users[e];
    const int64_t m = static_cast<int64_t>(who.size());
    xs.resize(static_cast<size_t>(m * E));
    ys.resize(static_cast<size_t>(m * E));
    for (int64_t j = 0; j < m; ++j) std::copy_n(&h[who[j].first * E], E, &xs[j * E]);
    const uint64_t c0 = NowNs();
    ExpertSwiGlu(L, view, xs.data(), m, ys.data());
    ctx_.timings.experts_ns += NowNs() - c0;
    for (int64_t j = 0; j < m; ++j) {
      std::copy_n(&ys[j * E], E, &expert_out[(who[j].first * K + who[j].second) * E]);
    }
  }
  if (!failed.ok()) return failed;
  for (int64_t t = 0; t < n; ++t) {
    for (int64_t i = 0; i < E; ++i) {
      float acc = 0;
      for (int64_t k = 0; k < K; ++k) acc += routes[t].weights[k] * expert_out[(t * K + k) * E + i];
      out[t * E + i] = acc + shared[t * E + i];
    }
  }
  return Status::Ok();
}

}  // namespace strata::engine

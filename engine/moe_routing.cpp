// MoE routing of one token (docs/MODEL.md §5, §9): softmax (V2), sigmoid + bias with
// group-limited top-k (V3), sqrt-softplus + bias (V4), or fixed ids (V4 hash layers).
#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "engine/deepseek2_model.h"

namespace strata::engine {
namespace {

// The top-k of probs + bias, within the best groups when the model limits them.
std::vector<int32_t> SelectExperts(const Deepseek2Config& c, const std::vector<float>& probs,
                                   const float* bias) {
  const int n = static_cast<int>(c.n_expert);
  const int k = static_cast<int>(c.n_expert_used);
  std::vector<float> select(n);
  for (int e = 0; e < n; ++e) select[e] = probs[e] + (bias ? bias[e] : 0.0f);

  // Group-limited routing: keep the best n_group_used groups, scored by the sum of
  // their two best (biased) scores (V3), or by their best score without a bias (V2).
  const int groups = static_cast<int>(c.n_group);
  if (groups > 1 && c.n_group_used < c.n_group) {
    const int per = n / groups;
    std::vector<float> group_score(groups);
    for (int g = 0; g < groups; ++g) {
      std::vector<float> v(select.begin() + g * per, select.begin() + (g + 1) * per);
      std::sort(v.begin(), v.end(), std::greater<>());
      group_score[g] = bias ? v[0] + (per > 1 ? v[1] : 0.0f) : v[0];
    }
    std::vector<int> order(groups);
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(),
                     [&](int a, int b) { return group_score[a] > group_score[b]; });
    for (int rank = static_cast<int>(c.n_group_used); rank < groups; ++rank) {
      const int g = order[rank];
      for (int e = g * per; e < (g + 1) * per; ++e)
        select[e] = -std::numeric_limits<float>::infinity();
    }
  }
  std::vector<int> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::partial_sort(order.begin(), order.begin() + k, order.end(), [&](int a, int b) {
    return select[a] != select[b] ? select[a] > select[b] : a < b;
  });
  return std::vector<int32_t>(order.begin(), order.begin() + k);
}


}  // namespace

RoutedExperts RouteToken(const Deepseek2Config& c, const float* logits, const float* bias,
                         const int32_t* fixed_ids) {
  const int n = static_cast<int>(c.n_expert);
  const int k = static_cast<int>(c.n_expert_used);
  std::vector<float> probs(n);
  if (c.gating == GatingFunc::kSqrtSoftplus) {
    // V4 (docs/MODEL.md §9): sqrt(softplus(x)); softplus = log1p(exp(x)), x itself when large.
    for (int e = 0; e < n; ++e) {
      const float x = logits[e];
      probs[e] = std::sqrt(x > 20.0f ? x : std::log1p(std::exp(x)));
    }
  } else if (c.gating == GatingFunc::kSigmoid) {
    for (int e = 0; e < n; ++e) probs[e] = 1.0f / (1.0f + std::exp(-logits[e]));
  } else {
    const float max = *std::max_element(logits, logits + n);
    float sum = 0;
    for (int e = 0; e < n; ++e) sum += probs[e] = std::exp(logits[e] - max);
    for (int e = 0; e < n; ++e) probs[e] /= sum;
  }
  // V4 hash layers: the token's experts are fixed; only their weights are learned.
  const std::vector<int32_t> ids =
      fixed_ids ? std::vector<int32_t>(fixed_ids, fixed_ids + k) : SelectExperts(c, probs, bias);
  RoutedExperts r;
  float sum = 0;
  for (const int32_t id : ids) {
    r.ids.push_back(id);
    r.weights.push_back(probs[id]);
    sum += probs[id];
  }
  for (float& w : r.weights) {
    if (c.expert_weights_norm) {
      // V4 divides by sum + 1e-20; llama.cpp's deepseek2 clamps the sum at 2^-14.
      w /= c.gating == GatingFunc::kSqrtSoftplus ? sum + 1e-20f : std::max(sum, 6.103515625e-5f);
    }
    w *= c.expert_weights_scale;
  }
  return r;
}

}  // namespace strata::engine

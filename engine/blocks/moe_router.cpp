#include "engine/blocks/moe_router.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

namespace strata::engine {
namespace {

void Softmax(const float* logits, int n, float* scores) {
  const float max = *std::max_element(logits, logits + n);
  float sum = 0;
  for (int e = 0; e < n; ++e) sum += scores[e] = std::exp(logits[e] - max);
  for (int e = 0; e < n; ++e) scores[e] /= sum;
}

void Sigmoid(const float* logits, int n, float* scores) {
  for (int e = 0; e < n; ++e) scores[e] = 1.0f / (1.0f + std::exp(-logits[e]));
}

// V4 (docs/MODEL.md §9): sqrt(softplus(x)); softplus = log1p(exp(x)), x itself when large.
void SqrtSoftplus(const float* logits, int n, float* scores) {
  for (int e = 0; e < n; ++e) {
    const float x = logits[e];
    scores[e] = std::sqrt(x > 20.0f ? x : std::log1p(std::exp(x)));
  }
}

// V4 divides by sum + 1e-20; llama.cpp's deepseek2 clamps the sum at 2^-14.
float SumPlusTiny(float sum) { return sum + 1e-20f; }
float SumAtLeastHalfPrecisionTiny(float sum) { return std::max(sum, 6.103515625e-5f); }

using ScoreFn = void (*)(const float* logits, int n, float* scores);
using NormFn = float (*)(float sum);

ScoreFn ScoreFor(GatingFunc gating) {
  switch (gating) {
    case GatingFunc::kSqrtSoftplus:
      return SqrtSoftplus;
    case GatingFunc::kSigmoid:
      return Sigmoid;
    default:
      return Softmax;
  }
}

NormFn NormFor(const Deepseek2Config& c) {
  if (!c.expert_weights_norm) return nullptr;
  return c.gating == GatingFunc::kSqrtSoftplus ? SumPlusTiny : SumAtLeastHalfPrecisionTiny;
}

}  // namespace

MoeRouter::MoeRouter(const Deepseek2Config& c)
    : n_(static_cast<int>(c.n_expert)),
      k_(static_cast<int>(c.n_expert_used)),
      groups_(static_cast<int>(c.n_group)),
      groups_used_(static_cast<int>(c.n_group_used)),
      score_(ScoreFor(c.gating)),
      norm_(NormFor(c)),
      scale_(c.expert_weights_scale) {}

// The top-k of scores + bias, within the best groups when the model limits them.
std::vector<int32_t> MoeRouter::SelectTopK(const std::vector<float>& scores,
                                           const float* bias) const {
  std::vector<float> select(n_);
  for (int e = 0; e < n_; ++e) select[e] = scores[e] + (bias ? bias[e] : 0.0f);

  // Group-limited routing: keep the best groups_used_ groups, scored by the sum of
  // their two best (biased) scores (V3), or by their best score without a bias (V2).
  if (groups_ > 1 && groups_used_ < groups_) {
    const int per = n_ / groups_;
    std::vector<float> group_score(groups_);
    for (int g = 0; g < groups_; ++g) {
      std::vector<float> v(select.begin() + g * per, select.begin() + (g + 1) * per);
      std::sort(v.begin(), v.end(), std::greater<>());
      group_score[g] = bias ? v[0] + (per > 1 ? v[1] : 0.0f) : v[0];
    }
    std::vector<int> order(groups_);
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(),
                     [&](int a, int b) { return group_score[a] > group_score[b]; });
    for (int rank = groups_used_; rank < groups_; ++rank) {
      const int g = order[rank];
      for (int e = g * per; e < (g + 1) * per; ++e)
        select[e] = -std::numeric_limits<float>::infinity();
    }
  }
  std::vector<int> order(n_);
  std::iota(order.begin(), order.end(), 0);
  std::partial_sort(order.begin(), order.begin() + k_, order.end(), [&](int a, int b) {
    return select[a] != select[b] ? select[a] > select[b] : a < b;
  });
  return std::vector<int32_t>(order.begin(), order.begin() + k_);
}

RoutedExperts MoeRouter::Route(const float* logits, const float* bias,
                               const int32_t* fixed_ids) const {
  std::vector<float> scores(n_);
  score_(logits, n_, scores.data());
  RoutedExperts r;
  r.ids = fixed_ids ? std::vector<int32_t>(fixed_ids, fixed_ids + k_) : SelectTopK(scores, bias);
  float sum = 0;
  for (const int32_t id : r.ids) {
    r.weights.push_back(scores[id]);
    sum += scores[id];
  }
  for (float& w : r.weights) {
    if (norm_) w /= norm_(sum);
    w *= scale_;
  }
  return r;
}

}  // namespace strata::engine

// MoE routing of one token (docs/MODEL.md §5, §9), as three small strategies chosen
// once from the config: how router logits become scores (softmax for V2, sigmoid for
// V3, sqrt-softplus for V4), how experts are selected (top-k of score + bias, within
// the best groups when the model limits them; or the fixed ids of a V4 hash layer),
// and how the chosen scores become weights (normalised as the model says, scaled).
// Immutable; thread-safe.
#pragma once

#include <cstdint>
#include <vector>

#include "engine/deepseek2_config.h"

namespace strata::engine {

// Routing of one token: the chosen experts and their weights, in selection order.
struct RoutedExperts {
  std::vector<int32_t> ids;
  std::vector<float> weights;
};

class MoeRouter {
 public:
  explicit MoeRouter(const Deepseek2Config& c);

  // `logits` [n_expert]; `bias` [n_expert] or null; `fixed_ids` (V4 hash layers): the
  // experts are these top-k, only their weights come from the scores.
  RoutedExperts Route(const float* logits, const float* bias,
                      const int32_t* fixed_ids = nullptr) const;

 private:
  using ScoreFn = void (*)(const float* logits, int n, float* scores);
  // The sum a weight is divided by, from the chosen scores' sum.
  using NormFn = float (*)(float sum);
  std::vector<int32_t> SelectTopK(const std::vector<float>& scores, const float* bias) const;

  int n_, k_;
  int groups_, groups_used_;  // group-limited selection when groups_used_ < groups_
  ScoreFn score_;
  NormFn norm_;  // null: weights are not normalised
  float scale_;
};

}  // namespace strata::engine

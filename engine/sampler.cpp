#include "engine/sampler.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <unordered_set>

namespace strata::engine {

Sampler::Sampler(const SamplerOptions& options)
    : o_(options),
      seed_(options.seed >= 0 ? static_cast<uint64_t>(options.seed) : std::random_device{}()),
      rng_(static_cast<std::mt19937::result_type>(seed_)) {}

void Sampler::Accept(int32_t token) {
  if (o_.repeat_last_n <= 0) return;
  recent_.push_back(token);
  while (static_cast<int32_t>(recent_.size()) > o_.repeat_last_n) recent_.pop_front();
}

int32_t Sampler::Sample(const std::vector<float>& logits_in) {
  std::vector<float> logits = logits_in;
  if (o_.repeat_penalty != 1.0f && !recent_.empty()) {
    const std::unordered_set<int32_t> seen(recent_.begin(), recent_.end());
    for (int32_t t : seen) {
      float& l = logits[static_cast<size_t>(t)];
      l = l > 0 ? l / o_.repeat_penalty : l * o_.repeat_penalty;
    }
  }
  if (o_.temp <= 0.0f) {
    return static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
  }
  // Candidates sorted by logit, highest first (ties: lower id first).
  std::vector<int32_t> ids(logits.size());
  std::iota(ids.begin(), ids.end(), 0);
  const size_t k =
      o_.top_k > 0 ? std::min<size_t>(static_cast<size_t>(o_.top_k), ids.size()) : ids.size();
  std::partial_sort(
      ids.begin(), ids.begin() + static_cast<int64_t>(k), ids.end(),
      [&](int32_t a, int32_t b) { return logits[a] != logits[b] ? logits[a] > logits[b] : a < b; });
  ids.resize(k);
  auto softmax = [&](float temp) {
    std::vector<double> p(ids.size());
    const double max = logits[ids[0]];
    double sum = 0;
    for (size_t i = 0; i < ids.size(); ++i) sum += p[i] = std::exp((logits[ids[i]] - max) / temp);
    for (double& v : p) v /= sum;
    return p;
  };
  // top-p: the smallest prefix whose probability reaches top_p (at least one token).
  if (o_.top_p < 1.0f) {
    const auto p = softmax(1.0f);
    double cum = 0;
    size_t keep = ids.size();
    for (size_t i = 0; i < p.size(); ++i) {
      cum += p[i];
      if (cum >= o_.top_p) {
        keep = i + 1;
        break;
      }
    }
    ids.resize(keep);
  }
  // min-p: drop tokens whose probability is below min_p times the best one's.
  if (o_.min_p > 0.0f) {
    const float threshold = logits[ids[0]] + std::log(o_.min_p);
    size_t keep = 1;
    while (keep < ids.size() && logits[ids[keep]] >= threshold) ++keep;
    ids.resize(keep);
  }
  const auto p = softmax(o_.temp);
  const double u = std::generate_canonical<double, 53>(rng_);
  double cum = 0;
  for (size_t i = 0; i < p.size(); ++i) {
    cum += p[i];
    if (u < cum) return ids[i];
  }
  return ids.back();
}

}  // namespace strata::engine

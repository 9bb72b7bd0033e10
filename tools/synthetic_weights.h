// Deterministic synthetic weights for make-model: every value is a pure function of
// (seed, tensor name, row), so files are byte-identical for a seed whatever the thread
// count, and rows can be generated in parallel. Values are normal with a per-tensor
// scale chosen so activations stay finite through every layer. Thread-safe (pure).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "engine/deepseek2_config.h"
#include "engine/deepseek2_tensors.h"

namespace strata::tools {

// xoshiro256** seeded through splitmix64: fast, well distributed, and identical on
// every platform (std::normal_distribution is not).
class Rng {
 public:
  explicit Rng(uint64_t seed);
  uint64_t Next();
  float Uniform01();  // in (0, 1]
  float Normal();     // standard normal (ziggurat)
  void FillNormal(float* out, int64_t n, float stddev, float mean);

 private:
  uint64_t s_[4];
};

uint64_t HashName(const std::string& name, uint64_t seed);

// How one tensor's values are drawn: normal(mean, stddev).
struct WeightInit {
  float mean = 0.0f;
  float stddev = 0.0f;
};
WeightInit InitFor(const engine::TensorSpec& spec, const engine::Deepseek2Config& config);

// Fills row `row` (ne0 values) of tensor `spec`.
void GenerateRow(const engine::TensorSpec& spec, const WeightInit& init, uint64_t seed,
                 uint64_t row, float* out);

// Router biases (exp_probs_b) that make expert popularity follow a Zipf law with
// exponent `skew` (0 = leave routing as the random router makes it, near-uniform).
// Calibrated by simulation: probe hidden states are drawn, the real router weights of
// `layer` (regenerated from the seed) score them, and the bias is adjusted until each
// expert's selection share matches its Zipf target. Which experts are popular is a
// seeded permutation per layer.
std::vector<float> CalibrateRouterBias(const engine::Deepseek2Config& config,
                                       const engine::TensorSpec& router_spec, uint64_t seed,
                                       double skew);

// The Zipf selection shares (sum = top-k) for `n_expert` experts ranked by
// `rank_of_expert`, each capped below 1 (an expert is picked at most once per token).
std::vector<double> ZipfTargetShares(uint32_t n_expert, uint32_t top_k, double skew,
                                     const std::vector<uint32_t>& rank_of_expert);

}  // namespace strata::tools

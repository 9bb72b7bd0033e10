// Token sampling with llama.cpp's defaults and chain order: repeat penalty over the
// last N tokens, then top-k, top-p, min-p, temperature, and a draw from a seeded
// mt19937 (fully specified by the standard, so a seed reproduces on any platform).
// temp <= 0 means greedy. O(vocab log k) per token. Thread-compatible.
#pragma once

#include <cstdint>
#include <deque>
#include <random>
#include <vector>

namespace strata::engine {

struct SamplerOptions {
  float temp = 0.8f;
  int32_t top_k = 40;           // <= 0: off
  float top_p = 0.95f;          // >= 1: off
  float min_p = 0.05f;          // <= 0: off
  float repeat_penalty = 1.0f;  // 1: off
  int32_t repeat_last_n = 64;
  int64_t seed = -1;  // -1: random
};

class Sampler {
 public:
  explicit Sampler(const SamplerOptions& options);

  // Picks the next token from `logits` (n_vocab values; not modified).
  int32_t Sample(const std::vector<float>& logits);
  // Records a token for the repeat penalty (prompt tokens and generated ones).
  void Accept(int32_t token);
  uint64_t seed() const { return seed_; }

 private:
  SamplerOptions o_;
  uint64_t seed_;
  std::mt19937 rng_;
  std::deque<int32_t> recent_;
};

}  // namespace strata::engine

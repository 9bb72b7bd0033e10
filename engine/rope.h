// Rotary position embedding with YaRN, as llama.cpp applies it to deepseek2 (ggml's
// rope_yarn with ext_factor 1, beta_fast 32, beta_slow 1, and attn_factor chosen so the
// rotation itself is unscaled; the YaRN magnitude correction goes into the attention
// scale instead, see AttentionScale). Adjacent pairs (x[2i], x[2i+1]) rotate ("NORM"
// rope type). Thread-safe after construction.
#pragma once

#include <cstdint>
#include <vector>

namespace strata::engine {

struct RopeParams {
  int n_dims = 64;  // rotated dims (qk_rope)
  float freq_base = 10000.0f;
  float freq_scale = 1.0f;  // 1 / rope.scaling.factor (1: no YaRN)
  int n_ctx_orig = 0;       // rope.scaling.original_context_length
  bool yarn = false;
  float beta_fast = 32.0f;
  float beta_slow = 1.0f;
  float mscale = 1.0f;  // magnitude of cos/sin (YarnFactors::rope_mscale)
};

// llama.cpp's YaRN magnitudes for deepseek2. `gguf_log_mul` is the file's
// rope.scaling.yarn_log_multiplier, which llama.cpp divides by 0.1 on load
// (TAG_DEEPSEEK2_YARN_LOG_MUL_FIX). With it, the rotation is unscaled and
// kq_mscale = 1 + 0.1 * log_mul * ln(factor); without it (0), both carry
// 1 + 0.1 * ln(factor).
struct YarnFactors {
  float rope_mscale = 1.0f;
  float kq_mscale = 1.0f;
};
YarnFactors ComputeYarnFactors(float factor, float gguf_log_mul);

class Rope {
 public:
  explicit Rope(const RopeParams& params);

  // Rotates n_dims values of x in place for position `pos`.
  void Apply(float* x, int64_t pos) const;

 private:
  RopeParams p_;
  float corr_low_ = 0, corr_high_ = 0;
  std::vector<float> theta_scale_pow_;  // base^(-2i/n_dims)
};

// The softmax scale llama.cpp uses for deepseek2: kq_mscale^2 / sqrt(head_k).
float AttentionScale(int head_k, const YarnFactors& yarn);

}  // namespace strata::engine

#include "engine/rope.h"

#include <algorithm>
#include <cmath>

namespace strata::engine {
namespace {

float CorrDim(int n_dims, int n_ctx_orig, float n_rot, float base) {
  return static_cast<float>(n_dims) *
         std::log(static_cast<float>(n_ctx_orig) / (n_rot * 2.0f * static_cast<float>(M_PI))) /
         (2.0f * std::log(base));
}

}  // namespace

Rope::Rope(const RopeParams& params) : p_(params) {
  const float theta_scale = std::pow(p_.freq_base, -2.0f / static_cast<float>(p_.n_dims));
  float power = 1.0f;
  for (int i = 0; i < p_.n_dims / 2; ++i) {
    theta_scale_pow_.push_back(power);
    power *= theta_scale;  // as ggml accumulates it: theta *= theta_scale per pair
  }
  if (p_.yarn) {
    corr_low_ =
        std::max(0.0f, std::floor(CorrDim(p_.n_dims, p_.n_ctx_orig, p_.beta_fast, p_.freq_base)));
    corr_high_ = std::min(static_cast<float>(p_.n_dims - 1),
                          std::ceil(CorrDim(p_.n_dims, p_.n_ctx_orig, p_.beta_slow, p_.freq_base)));
  }
}

void Rope::Apply(float* x, int64_t pos) const {
  const float p = static_cast<float>(pos);
  for (int i = 0; i < p_.n_dims / 2; ++i) {
    const float theta_extrap = p * theta_scale_pow_[i];
    float theta = theta_extrap;
    if (p_.yarn) {
      const float theta_interp = p_.freq_scale * theta_extrap;
      const float y =
          (static_cast<float>(i) - corr_low_) / std::max(0.001f, corr_high_ - corr_low_);
      const float ramp_mix = 1.0f - std::min(1.0f, std::max(0.0f, y));  // ext_factor = 1
      theta = theta_interp * (1.0f - ramp_mix) + theta_extrap * ramp_mix;
    }
    const float c = std::cos(theta) * p_.mscale, s = std::sin(theta) * p_.mscale;
    const float x0 = x[2 * i], x1 = x[2 * i + 1];
    x[2 * i] = x0 * c - x1 * s;
    x[2 * i + 1] = x0 * s + x1 * c;
  }
}

YarnFactors ComputeYarnFactors(float factor, float gguf_log_mul) {
  YarnFactors f;
  if (factor <= 1.0f) return f;
  const float log_mul = gguf_log_mul / 0.1f;
  // cparams.yarn_attn_factor: 1 for deepseek2 files that carry the multiplier.
  const float yarn_attn_factor = log_mul != 0.0f ? 1.0f : 1.0f + 0.1f * std::log(factor);
  // The graph receives yarn_attn_factor / (1 + 0.1 ln f) and rope_yarn multiplies it by
  // (1 + 0.1 ln f) again; the same product is attn_factor_org in the kq scale.
  const float adjust = 1.0f + 0.1f * std::log(factor);
  const float attn_factor_org = (yarn_attn_factor / adjust) * adjust;
  f.rope_mscale = attn_factor_org;
  f.kq_mscale = attn_factor_org * (1.0f + 0.1f * log_mul * std::log(factor));
  return f;
}

float AttentionScale(int head_k, const YarnFactors& yarn) {
  return yarn.kq_mscale * yarn.kq_mscale / std::sqrt(static_cast<float>(head_k));
}

}  // namespace strata::engine

#include "tests/engine/reference/deepseek2_reference.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "engine/quant/quantize.h"

namespace strata::testing {
namespace {

std::vector<float> RmsNorm(const std::vector<float>& x, const float* w, float eps) {
  double ss = 0;
  for (float v : x) ss += static_cast<double>(v) * v;
  const double scale = 1.0 / std::sqrt(ss / static_cast<double>(x.size()) + eps);
  std::vector<float> y(x.size());
  for (size_t i = 0; i < x.size(); ++i) y[i] = static_cast<float>(x[i] * scale * w[i]);
  return y;
}

double Silu(double x) { return x / (1.0 + std::exp(-x)); }

// The 8-bit block rounding the fast path applies to activations: per block, scale =
// max|x| / 127 and q = round-to-nearest-even(x / scale), returned as q * scale.
std::vector<float> RoundActivation(const std::vector<float>& x, size_t block) {
  std::vector<float> y(x.size());
  for (size_t b = 0; b < x.size(); b += block) {
    float amax = 0;
    for (size_t j = b; j < b + block; ++j) amax = std::max(amax, std::fabs(x[j]));
    const float d = amax / 127.0f;
    const float id = d > 0 ? 1.0f / d : 0.0f;
    for (size_t j = b; j < b + block; ++j) y[j] = std::nearbyint(x[j] * id) * d;
  }
  return y;
}

size_t ActivationBlock(storage::GgmlType t) {
  switch (t) {
    case storage::GgmlType::kQ4_0:
    case storage::GgmlType::kQ5_0:
    case storage::GgmlType::kQ8_0:
    case storage::GgmlType::kQ4_1:
    case storage::GgmlType::kQ5_1:
      return 32;
    case storage::GgmlType::kQ4_K:
    case storage::GgmlType::kQ5_K:
    case storage::GgmlType::kQ6_K:
    case storage::GgmlType::kQ2_K:
    case storage::GgmlType::kQ3_K:
      return 256;
    default:
      return 0;  // float weights take f32 activations
  }
}

}  // namespace

ReferenceDeepseek2::ReferenceDeepseek2(const engine::ModelFile& file,
                                       const engine::Deepseek2Config& config,
                                       bool quantize_activations)
    : c_(config),
      quantize_activations_(quantize_activations),
      latents_(config.n_layer),
      rope_keys_(config.n_layer) {
  for (const auto& t : file.gguf().tensors()) {
    types_[t.name] = t.type;
    std::vector<float>& out = weights_[t.name];
    out.resize(t.n_elements());
    const uint64_t rows = t.n_elements() / t.ne[0];
    for (uint64_t r = 0; r < rows; ++r) {
      engine::DequantizeRow(t.type, file.Data(t.name) + r * t.row_bytes(),
                            static_cast<int64_t>(t.ne[0]), &out[r * t.ne[0]]);
    }
  }
}

std::vector<float> ReferenceDeepseek2::Linear(const std::string& name,
                                              const std::vector<float>& x_in, size_t out,
                                              size_t row0) const {
  const std::vector<float>& w = W(name);
  const size_t block = quantize_activations_ ? ActivationBlock(types_.at(name)) : 0;
  const std::vector<float> x = block ? RoundActivation(x_in, block) : x_in;
  const size_t in = x.size();
  std::vector<float> y(out);
  for (size_t o = 0; o < out; ++o) {
    double acc = 0;
    for (size_t i = 0; i < in; ++i) acc += static_cast<double>(w[(row0 + o) * in + i]) * x[i];
    y[o] = static_cast<float>(acc);
  }
  return y;
}

std::vector<float> ReferenceDeepseek2::Mlp(const std::string& gate, const std::string& up,
                                           const std::string& down, const std::vector<float>& x,
                                           size_t ff, size_t row0_gate, size_t row0_down) const {
  const std::vector<float> g = Linear(gate, x, ff, row0_gate);
  const std::vector<float> u = Linear(up, x, ff, row0_gate);
  std::vector<float> a(ff);
  for (size_t i = 0; i < ff; ++i) a[i] = static_cast<float>(Silu(g[i]) * u[i]);
  return Linear(down, a, c_.n_embd, row0_down);
}

// Adjacent-pair rotation with YaRN, from the definition (MODEL.md §3, ggml rope_yarn).
void ReferenceDeepseek2::Rope(float* x, int64_t pos) const {
  const int d = static_cast<int>(c_.qk_rope);
  const bool yarn = c_.rope_scaling_type == "yarn" && c_.rope_scaling_factor > 1.0f;
  const double factor = yarn ? c_.rope_scaling_factor : 1.0;
  auto corr_dim = [&](double beta) {
    return d * std::log(c_.rope_orig_context / (beta * 2 * M_PI)) /
           (2 * std::log(c_.rope_freq_base));
  };
  const double low = std::max(0.0, std::floor(corr_dim(32.0)));
  const double high = std::min(d - 1.0, std::ceil(corr_dim(1.0)));
  const double log_mul = c_.yarn_log_multiplier / 0.1;
  const double magnitude = yarn && log_mul == 0 ? 1 + 0.1 * std::log(factor) : 1.0;
  for (int i = 0; i < d / 2; ++i) {
    const double theta_extrap = pos * std::pow(c_.rope_freq_base, -2.0 * i / d);
    double theta = theta_extrap;
    if (yarn) {
      const double ramp = 1 - std::clamp((i - low) / std::max(0.001, high - low), 0.0, 1.0);
      theta = theta_extrap / factor * (1 - ramp) + theta_extrap * ramp;
    }
    const double cs = std::cos(theta) * magnitude, sn = std::sin(theta) * magnitude;
    const double x0 = x[2 * i], x1 = x[2 * i + 1];
    x[2 * i] = static_cast<float>(x0 * cs - x1 * sn);
    x[2 * i + 1] = static_cast<float>(x0 * sn + x1 * cs);
  }
}

void ReferenceDeepseek2::Reset() {
  pos_ = 0;
  for (auto& l : latents_) l.clear();
  for (auto& k : rope_keys_) k.clear();
}

std::vector<float> ReferenceDeepseek2::Forward(int32_t token) {
  const size_t E = c_.n_embd, H = c_.n_head, dn = c_.qk_nope, dr = c_.qk_rope, dv = c_.v_head;
  const size_t Rkv = c_.kv_lora_rank, Rq = c_.q_lora_rank;
  const bool yarn = c_.rope_scaling_type == "yarn" && c_.rope_scaling_factor > 1.0f;
  const double log_mul = c_.yarn_log_multiplier / 0.1;
  const double mscale = !yarn          ? 1.0
                        : log_mul != 0 ? 1 + 0.1 * log_mul * std::log(c_.rope_scaling_factor)
                                       : 1 + 0.1 * std::log(c_.rope_scaling_factor);
  const double scale = mscale * mscale / std::sqrt(static_cast<double>(dn + dr));

  std::vector<float> x(W("token_embd.weight").begin() + static_cast<int64_t>(token * E),
                       W("token_embd.weight").begin() + static_cast<int64_t>((token + 1) * E));
  for (uint32_t il = 0; il < c_.n_layer; ++il) {
    const std::string p = "blk." + std::to_string(il) + ".";
    // Attention.
    std::vector<float> h = RmsNorm(x, W(p + "attn_norm.weight").data(), c_.rms_eps);
    std::vector<float> q;
    if (Rq > 0) {
      q = Linear(p + "attn_q_b.weight",
                 RmsNorm(Linear(p + "attn_q_a.weight", h, Rq), W(p + "attn_q_a_norm.weight").data(),
                         c_.rms_eps),
                 H * (dn + dr));
    } else {
      q = Linear(p + "attn_q.weight", h, H * (dn + dr));
    }
    const std::vector<float> kva = Linear(p + "attn_kv_a_mqa.weight", h, Rkv + dr);
    latents_[il].push_back(
        RmsNorm(std::vector<float>(kva.begin(), kva.begin() + static_cast<int64_t>(Rkv)),
                W(p + "attn_kv_a_norm.weight").data(), c_.rms_eps));
    std::vector<float> kr(kva.begin() + static_cast<int64_t>(Rkv), kva.end());
    Rope(kr.data(), pos_);
    rope_keys_[il].push_back(kr);

    const std::vector<float>& kb = W(p + "attn_k_b.weight");  // [H][Rkv][dn]
    const std::vector<float>& vb = W(p + "attn_v_b.weight");  // [H][dv][Rkv]
    std::vector<float> o(H * dv, 0.0f);
    // With activation rounding, the fast path rounds q_nope before attn_k_b (which
    // the naive form can mirror exactly) and the attention-weighted latent before
    // attn_v_b (which only exists after reassociating sum_s p_s (W c_s) = W sum_s p_s c_s).
    const size_t k_block =
        quantize_activations_ ? ActivationBlock(types_.at(p + "attn_k_b.weight")) : 0;
    const size_t v_block =
        quantize_activations_ ? ActivationBlock(types_.at(p + "attn_v_b.weight")) : 0;
    for (size_t hh = 0; hh < H; ++hh) {
      float* qh = &q[hh * (dn + dr)];
      Rope(qh + dn, pos_);
      std::vector<float> q_nope(qh, qh + dn);
      if (k_block) q_nope = RoundActivation(q_nope, k_block);
      std::vector<double> scores(static_cast<size_t>(pos_ + 1));
      for (int64_t s = 0; s <= pos_; ++s) {
        const std::vector<float>& cs = latents_[il][s];
        double dot = 0;
        for (size_t d = 0; d < dn; ++d) {  // expanded key: k_nope[d] = sum_r kb[h][r][d] c[r]
          double k = 0;
          for (size_t r = 0; r < Rkv; ++r)
            k += static_cast<double>(kb[(hh * Rkv + r) * dn + d]) * cs[r];
          dot += q_nope[d] * k;
        }
        for (size_t d = 0; d < dr; ++d)
          dot += static_cast<double>(qh[dn + d]) * rope_keys_[il][s][d];
        scores[s] = dot * scale;
      }
      const double max = *std::max_element(scores.begin(), scores.end());
      double sum = 0;
      for (double& sc : scores) sum += sc = std::exp(sc - max);
      if (v_block) {
        std::vector<float> o_lat(Rkv, 0.0f);
        for (int64_t s = 0; s <= pos_; ++s) {
          for (size_t r = 0; r < Rkv; ++r)
            o_lat[r] += static_cast<float>(scores[s] / sum) * latents_[il][s][r];
        }
        o_lat = RoundActivation(o_lat, v_block);
        for (size_t j = 0; j < dv; ++j) {
          double v = 0;
          for (size_t r = 0; r < Rkv; ++r)
            v += static_cast<double>(vb[(hh * dv + j) * Rkv + r]) * o_lat[r];
          o[hh * dv + j] = static_cast<float>(v);
        }
        continue;
      }
      for (int64_t s = 0; s <= pos_; ++s) {
        for (size_t j = 0; j < dv; ++j) {  // expanded value: v[j] = sum_r vb[h][j][r] c[r]
          double v = 0;
          for (size_t r = 0; r < Rkv; ++r)
            v += static_cast<double>(vb[(hh * dv + j) * Rkv + r]) * latents_[il][s][r];
          o[hh * dv + j] += static_cast<float>(scores[s] / sum * v);
        }
      }
    }
    const std::vector<float> attn = Linear(p + "attn_output.weight", o, E);
    for (size_t i = 0; i < E; ++i) x[i] += attn[i];

    // Feed-forward.
    h = RmsNorm(x, W(p + "ffn_norm.weight").data(), c_.rms_eps);
    std::vector<float> ffn;
    if (!c_.is_moe_layer(il)) {
      ffn =
          Mlp(p + "ffn_gate.weight", p + "ffn_up.weight", p + "ffn_down.weight", h, c_.n_ff, 0, 0);
    } else {
      const size_t X = c_.n_expert, K = c_.n_expert_used, Fe = c_.n_ff_exp;
      const std::vector<float> logits = Linear(p + "ffn_gate_inp.weight", h, X);
      std::vector<double> prob(X), sel(X);
      if (c_.gating == engine::GatingFunc::kSigmoid) {
        for (size_t e = 0; e < X; ++e)
          prob[e] = 1 / (1 + std::exp(-static_cast<double>(logits[e])));
      } else {
        double mx = *std::max_element(logits.begin(), logits.end()), z = 0;
        for (size_t e = 0; e < X; ++e) z += prob[e] = std::exp(logits[e] - mx);
        for (double& pr : prob) pr /= z;
      }
      const bool has_bias = Has(p + "exp_probs_b.bias");
      for (size_t e = 0; e < X; ++e)
        sel[e] = prob[e] + (has_bias ? W(p + "exp_probs_b.bias")[e] : 0.0);
      if (c_.n_group > 1 && c_.n_group_used < c_.n_group) {
        const size_t per = X / c_.n_group;
        std::vector<std::pair<double, size_t>> groups;
        for (size_t g = 0; g < c_.n_group; ++g) {
          std::vector<double> v(sel.begin() + static_cast<int64_t>(g * per),
                                sel.begin() + static_cast<int64_t>((g + 1) * per));
          std::sort(v.rbegin(), v.rend());
          groups.emplace_back(has_bias ? v[0] + v[1] : v[0], g);
        }
        std::stable_sort(groups.begin(), groups.end(),
                         [](const auto& a, const auto& b) { return a.first > b.first; });
        for (size_t rank = c_.n_group_used; rank < c_.n_group; ++rank) {
          for (size_t e = 0; e < per; ++e) sel[groups[rank].second * per + e] = -INFINITY;
        }
      }
      std::vector<size_t> idx(X);
      std::iota(idx.begin(), idx.end(), 0);
      std::stable_sort(idx.begin(), idx.end(), [&](size_t a, size_t b) { return sel[a] > sel[b]; });
      double wsum = 0;
      for (size_t k = 0; k < K; ++k) wsum += prob[idx[k]];
      ffn.assign(E, 0.0f);
      for (size_t k = 0; k < K; ++k) {
        double w = prob[idx[k]];
        if (c_.expert_weights_norm) w /= wsum;
        w *= c_.expert_weights_scale;
        const std::vector<float> y =
            Mlp(p + "ffn_gate_exps.weight", p + "ffn_up_exps.weight", p + "ffn_down_exps.weight", h,
                Fe, idx[k] * Fe, idx[k] * E);
        for (size_t i = 0; i < E; ++i) ffn[i] += static_cast<float>(w * y[i]);
      }
      if (c_.n_expert_shared > 0) {
        const std::vector<float> sh =
            Mlp(p + "ffn_gate_shexp.weight", p + "ffn_up_shexp.weight", p + "ffn_down_shexp.weight",
                h, Fe * c_.n_expert_shared, 0, 0);
        for (size_t i = 0; i < E; ++i) ffn[i] += sh[i];
      }
    }
    for (size_t i = 0; i < E; ++i) x[i] += ffn[i];
  }
  ++pos_;
  return Linear("output.weight", RmsNorm(x, W("output_norm.weight").data(), c_.rms_eps),
                c_.n_vocab);
}

}  // namespace strata::testing

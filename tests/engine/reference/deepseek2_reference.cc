#include "tests/engine/reference/deepseek2_reference.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>

#include "engine/quant/fp16.h"
#include "engine/quant/quantize.h"

namespace strata::testing {
namespace {

double Silu(double x) { return x / (1.0 + std::exp(-x)); }

// The 8-bit block rounding the fast path applies to activations, which is ggml's:
// blocks of 32: q = round-to-nearest-even(x * 127 / max|x|), scale max|x| / 127 rounded
// to f16; blocks of 256: the value of largest magnitude (the first) maps to -127,
// q = round-to-nearest-even(x * -127 / max) capped at 127, scale -max / 127 as 1 / (-127 /
// max). Returned as q * scale.
std::vector<float> RoundActivation(const std::vector<float>& x, size_t block) {
  std::vector<float> y(x.size());
  for (size_t b = 0; b < x.size(); b += block) {
    float amax = 0, max = 0;
    for (size_t j = b; j < b + block; ++j) {
      if (std::fabs(x[j]) > amax) amax = std::fabs(x[j]), max = x[j];
    }
    if (block == 32) {
      const float d = engine::HalfToFloat(engine::FloatToHalf(amax / 127.0f));
      const float id = amax > 0 ? 127.0f / amax : 0.0f;
      for (size_t j = b; j < b + block; ++j) y[j] = std::nearbyint(x[j] * id) * d;
    } else {
      const float iscale = amax > 0 ? -127.0f / max : 0.0f;
      const float d = amax > 0 ? 1.0f / iscale : 0.0f;
      for (size_t j = b; j < b + block; ++j) y[j] = std::min(127.0f, std::nearbyint(x[j] * iscale)) * d;
    }
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
    case storage::GgmlType::kMXFP4:
    case storage::GgmlType::kIQ4_NL:
      return 32;
    case storage::GgmlType::kQ4_K:
    case storage::GgmlType::kQ5_K:
    case storage::GgmlType::kQ6_K:
    case storage::GgmlType::kQ2_K:
    case storage::GgmlType::kQ3_K:
    case storage::GgmlType::kIQ2_XXS:
    case storage::GgmlType::kIQ2_XS:
    case storage::GgmlType::kIQ2_S:
    case storage::GgmlType::kIQ3_XXS:
    case storage::GgmlType::kIQ3_S:
    case storage::GgmlType::kIQ1_S:
    case storage::GgmlType::kIQ1_M:
    case storage::GgmlType::kIQ4_XS:
      return 256;
    default:
      return 0;  // float weights take f32 activations
  }
}

}  // namespace

std::vector<float> RmsNorm(const std::vector<float>& x, const float* w, float eps) {
  double ss = 0;
  for (float v : x) ss += static_cast<double>(v) * v;
  const double scale = 1.0 / std::sqrt(ss / static_cast<double>(x.size()) + eps);
  std::vector<float> y(x.size());
  for (size_t i = 0; i < x.size(); ++i) y[i] = static_cast<float>(x[i] * scale * (w ? w[i] : 1.0f));
  return y;
}

ReferenceDeepseek2::ReferenceDeepseek2(const engine::ModelFile& file,
                                       const engine::Deepseek2Config& config,
                                       bool quantize_activations)
    : c_(config),
      quantize_activations_(quantize_activations),
      latents_(config.n_layer),
      rope_keys_(config.n_layer),
      conv_inputs_(config.engram.n_layers()),
      v4_(config.n_layer) {
  for (const auto& t : file.gguf().tensors()) {
    types_[t.name] = t.type;
    std::vector<float>& out = weights_[t.name];
    const uint64_t rows = t.n_elements() / t.ne[0];
    if (t.type == storage::GgmlType::kI32) {  // V4 tid2eid: expert ids, exact as floats
      const auto* ids = reinterpret_cast<const int32_t*>(file.Data(t.name));
      out.assign(ids, ids + t.n_elements());
      continue;
    }
    if (t.name.ends_with("engram_embd.weight")) {
      const uint32_t dim = c_.engram.head_dim;
      out.resize(rows * dim);
      for (uint64_t r = 0; r < rows; ++r) {
        DecodeTableRow(file.Data(t.name) + r * t.row_bytes(), t.type, &out[r * dim]);
      }
      continue;
    }
    out.resize(t.n_elements());
    for (uint64_t r = 0; r < rows; ++r) {
      engine::DequantizeRow(t.type, file.Data(t.name) + r * t.row_bytes(),
                            static_cast<int64_t>(t.ne[0]), &out[r * t.ne[0]]);
    }
  }
}

// docs/GGUF.md §4.3 (a), from its text: E4M3FN codes times 2^(scale - 127), rounded to BF16.
void ReferenceDeepseek2::DecodeTableRow(const uint8_t* row, storage::GgmlType type,
                                        float* out) const {
  const uint32_t dim = c_.engram.head_dim;
  if (type != storage::GgmlType::kI8) {
    engine::DequantizeRow(type, row, dim, out);
    return;
  }
  for (uint32_t j = 0; j < dim; ++j) {
    const uint8_t code = row[j], scale = row[dim + j / 32];
    const int sign = code >> 7, exp = (code >> 3) & 15, man = code & 7;
    double v = exp ? (8 + man) * std::pow(2.0, exp - 10) : man * std::pow(2.0, -9);
    v = (sign ? -v : v) * std::pow(2.0, scale - 127);
    float f = static_cast<float>(v);
    uint32_t bits;
    std::memcpy(&bits, &f, 4);
    bits = (bits + 0x7fff + ((bits >> 16) & 1)) & 0xffff0000u;
    std::memcpy(&out[j], &bits, 4);
  }
}

// docs/GGUF.md §4.4, from its text: the current compressed id and the older ones (pad
// once a dead slot or the sequence start is reached), cumulative XOR of products,
// modulo each column's prime, plus the running offset.
std::vector<uint64_t> ReferenceDeepseek2::EngramRows(size_t layer_index) const {
  const engine::EngramConfig& eg = c_.engram;
  std::vector<uint64_t> ids(eg.max_ngram);
  bool blocked = false;
  for (uint32_t j = 0; j < eg.max_ngram; ++j) {
    const int64_t back = static_cast<int64_t>(history_.size()) - 1 - j;
    blocked = blocked || back < 0;
    ids[j] = blocked ? eg.pad_id : eg.token_map[static_cast<size_t>(history_[back])];
  }
  std::vector<uint64_t> rows;
  uint64_t h = ids[0] * eg.multipliers[layer_index * eg.max_ngram];
  uint64_t offset = 0;
  for (uint32_t j = 1; j < eg.max_ngram; ++j) {
    h ^= ids[j] * eg.multipliers[layer_index * eg.max_ngram + j];
    for (uint32_t head = 0; head < eg.n_heads; ++head) {
      const uint64_t p = eg.primes[layer_index * eg.cols() + (j - 1) * eg.n_heads + head];
      rows.push_back(h % p + offset);
      offset += p;
    }
  }
  return rows;
}

// docs/MODEL.md §7: pre, post and Sinkhorn-projected comb from the normalised streams.
ReferenceDeepseek2::Mix ReferenceDeepseek2::HyperMix(const std::string& site,
                                                     const std::vector<std::vector<float>>& X,
                                                     bool head) const {
  const size_t n = X.size(), E = c_.n_embd;
  double ss = 0;
  for (const auto& xs : X) {
    for (float v : xs) ss += static_cast<double>(v) * v;
  }
  const double inv = 1.0 / std::sqrt(ss / static_cast<double>(n * E) + c_.rms_eps);
  const std::vector<float>& fn = W(site + "fn.weight");
  const std::vector<float>& base = W(site + "base.weight");
  const std::vector<float>& scale = W(site + "scale.weight");
  const size_t rows = head ? n : (2 + n) * n;
  std::vector<double> m(rows);
  for (size_t r = 0; r < rows; ++r) {
    double acc = 0;
    for (size_t k = 0; k < n; ++k) {
      for (size_t d = 0; d < E; ++d) acc += fn[r * n * E + k * E + d] * X[k][d] * inv;
    }
    m[r] = acc;
  }
  auto sigmoid = [](double v) { return 1.0 / (1.0 + std::exp(-v)); };
  Mix mix;
  mix.pre.resize(n);
  for (size_t k = 0; k < n; ++k) mix.pre[k] = sigmoid(m[k] * scale[0] + base[k]) + c_.hc_eps;
  if (head) return mix;
  mix.post.resize(n);
  for (size_t k = 0; k < n; ++k) mix.post[k] = 2 * sigmoid(m[n + k] * scale[1] + base[n + k]);
  std::vector<std::vector<double>> cm(n, std::vector<double>(n));
  for (size_t i = 0; i < n; ++i) {
    double mx = -INFINITY, z = 0;
    for (size_t j = 0; j < n; ++j) {
      cm[i][j] = m[2 * n + i * n + j] * scale[2] + base[2 * n + i * n + j];
      mx = std::max(mx, cm[i][j]);
    }
    for (size_t j = 0; j < n; ++j) z += cm[i][j] = std::exp(cm[i][j] - mx);
    for (size_t j = 0; j < n; ++j) cm[i][j] = cm[i][j] / z + c_.hc_eps;
  }
  for (uint32_t it = 0; it < c_.hc_sinkhorn_iters; ++it) {
    if (it > 0) {
      for (size_t i = 0; i < n; ++i) {
        double z = 0;
        for (size_t j = 0; j < n; ++j) z += cm[i][j];
        for (size_t j = 0; j < n; ++j) cm[i][j] /= z + c_.hc_eps;
      }
    }
    for (size_t j = 0; j < n; ++j) {
      double z = 0;
      for (size_t i = 0; i < n; ++i) z += cm[i][j];
      for (size_t i = 0; i < n; ++i) cm[i][j] /= z + c_.hc_eps;
    }
  }
  mix.comb = cm;
  return mix;
}

// docs/MODEL.md §10.3 (v41) and §10.1 (f)-(h) (demo), one token.
void ReferenceDeepseek2::Engram(uint32_t il, size_t layer_index,
                                std::vector<std::vector<float>>& X) {
  const engine::EngramConfig& eg = c_.engram;
  const std::string p = "blk." + std::to_string(il) + ".";
  const size_t E = c_.n_embd, n = X.size(), hd = eg.head_dim;
  const std::vector<uint64_t> rows = EngramRows(layer_index);
  const std::vector<float>& table = W(p + "engram_embd.weight");
  std::vector<float> e;
  for (uint64_t r : rows) e.insert(e.end(), &table[r * hd], &table[(r + 1) * hd]);
  auto gate = [](double dot) {
    const double sq = std::sqrt(std::max(std::fabs(dot), 1e-6));
    return 1.0 / (1.0 + std::exp(-(dot < 0 ? -sq : sq)));
  };
  const std::vector<float>& qn = W(p + "engram_q_norm.weight");
  const std::vector<float>& kn = W(p + "engram_k_norm.weight");
  if (eg.module == engine::EngramModule::kV41) {
    const std::vector<float> kv = Linear(p + "engram_kv.weight", e, (n + 1) * E);
    for (size_t m = 0; m < n; ++m) {
      double hh = 0, kk = 0, dot = 0;
      for (size_t d = 0; d < E; ++d) {
        const double h = X[m][d], k = kv[m * E + d];
        hh += h * h;
        kk += k * k;
        dot += h * qn[m * E + d] * kn[m * E + d] * k;
      }
      dot /= std::sqrt(hh / E + c_.rms_eps) * std::sqrt(kk / E + c_.rms_eps) *
             std::sqrt(static_cast<double>(E));
      const double alpha = gate(dot);
      for (size_t d = 0; d < E; ++d) X[m][d] += static_cast<float>(alpha * kv[n * E + d]);
    }
    return;
  }
  const std::vector<float> keys = Linear(p + "engram_k.weight", e, n * E);
  const std::vector<float> value = Linear(p + "engram_v.weight", e, E);
  const std::vector<float>& kb = W(p + "engram_k.bias");
  const std::vector<float>& vb = W(p + "engram_v.bias");
  const std::vector<float>& cn = W(p + "engram_conv_norm.weight");
  const std::vector<float>& conv = W(p + "engram_conv.weight");
  std::vector<std::vector<float>> conv_in(n);
  std::vector<std::vector<float>> u(n, std::vector<float>(E));
  for (size_t m = 0; m < n; ++m) {
    std::vector<float> k(E);
    for (size_t d = 0; d < E; ++d) k[d] = keys[m * E + d] + kb[m * E + d];
    const std::vector<float> kn_m = RmsNorm(k, &kn[m * E], c_.rms_eps);
    const std::vector<float> q_m = RmsNorm(X[m], &qn[m * E], c_.rms_eps);
    double dot = 0;
    for (size_t d = 0; d < E; ++d) dot += static_cast<double>(kn_m[d]) * q_m[d];
    const double alpha = gate(dot / std::sqrt(static_cast<double>(E)));
    for (size_t d = 0; d < E; ++d) u[m][d] = static_cast<float>(alpha * (value[d] + vb[d]));
    conv_in[m] = RmsNorm(u[m], &cn[m * E], 1e-5f);
  }
  conv_inputs_[layer_index].push_back(conv_in);  // [pos][stream][E]
  const auto& hist = conv_inputs_[layer_index];
  const int64_t K = eg.conv_kernel, dil = eg.conv_dilation;
  for (size_t m = 0; m < n; ++m) {
    for (size_t d = 0; d < E; ++d) {
      double acc = 0;
      for (int64_t j = 0; j < K; ++j) {
        const int64_t src = pos_ - (K - 1 - j) * dil;
        if (src >= 0) acc += conv[j * n * E + m * E + d] * hist[static_cast<size_t>(src)][m][d];
      }
      X[m][d] += static_cast<float>(u[m][d] + Silu(acc));
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
                                           size_t ff, size_t row0_gate, size_t row0_down,
                                           float clamp) const {
  const std::vector<float> g = Linear(gate, x, ff, row0_gate);
  const std::vector<float> u = Linear(up, x, ff, row0_gate);
  std::vector<float> a(ff);
  for (size_t i = 0; i < ff; ++i) {
    if (clamp > 0) {  // docs/MODEL.md §9: silu(min(gate, c)) * clamp(up, -c, c)
      a[i] = static_cast<float>(Silu(std::min(g[i], clamp)) * std::clamp(u[i], -clamp, clamp));
    } else {
      a[i] = static_cast<float>(Silu(g[i]) * u[i]);
    }
  }
  return Linear(down, a, c_.n_embd, row0_down);
}

// Adjacent-pair rotation with YaRN, from the definition (docs/MODEL.md §3, ggml rope_yarn).
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
  history_.clear();
  for (auto& c : conv_inputs_) c.clear();
  for (auto& l : latents_) l.clear();
  for (auto& k : rope_keys_) k.clear();
  for (auto& v : v4_) v.clear();
}

std::vector<float> ReferenceDeepseek2::Forward(int32_t token) {
  const size_t E = c_.n_embd, dn = c_.qk_nope, dr = c_.qk_rope;
  const bool yarn = c_.rope_scaling_type == "yarn" && c_.rope_scaling_factor > 1.0f;
  const double log_mul = c_.yarn_log_multiplier / 0.1;
  const double mscale = !yarn          ? 1.0
                        : log_mul != 0 ? 1 + 0.1 * log_mul * std::log(c_.rope_scaling_factor)
                                       : 1 + 0.1 * std::log(c_.rope_scaling_factor);
  const double scale = mscale * mscale / std::sqrt(static_cast<double>(dn + dr));

  const std::vector<float> embd(W("token_embd.weight").begin() + static_cast<int64_t>(token * E),
                                W("token_embd.weight").begin() + static_cast<int64_t>((token + 1) * E));
  // The residual: hc_mult streams, each starting as the embedding (one without mHC).
  const size_t n_streams = c_.hc_mult;
  std::vector<std::vector<float>> X(n_streams, embd);
  history_.push_back(token);
  std::vector<float> x;
  // Runs one sub-block on the streams: straight, or collapse -> block -> mix + add.
  auto site = [&](const std::string& prefix, auto&& block) {
    if (n_streams == 1) {
      x = X[0];
      const std::vector<float> y = block();
      for (size_t i = 0; i < E; ++i) X[0][i] += y[i];
      return;
    }
    const Mix mix = HyperMix(prefix, X, false);
    x.assign(E, 0.0f);
    for (size_t d = 0; d < E; ++d) {
      double acc = 0;
      for (size_t k = 0; k < n_streams; ++k) acc += mix.pre[k] * X[k][d];
      x[d] = static_cast<float>(acc);
    }
    const std::vector<float> y = block();
    std::vector<std::vector<float>> out(n_streams, std::vector<float>(E));
    for (size_t k = 0; k < n_streams; ++k) {
      for (size_t d = 0; d < E; ++d) {
        double acc = mix.post[k] * y[d];
        for (size_t j = 0; j < n_streams; ++j) acc += mix.comb[j][k] * X[j][d];
        out[k][d] = static_cast<float>(acc);
      }
    }
    X = std::move(out);
  };
  for (uint32_t il = 0; il < c_.n_layer; ++il) {
    const std::string p = "blk." + std::to_string(il) + ".";
    if (c_.engram.enabled() && c_.engram.index_of_layer(il) >= 0) {
      Engram(il, static_cast<size_t>(c_.engram.index_of_layer(il)), X);
    }
    site(p + "hc_attn_", [&] { return c_.is_v4() ? AttentionV4(il, x) : AttentionBlock(il, x, scale); });
    site(p + "hc_ffn_", [&] { return FeedForwardBlock(il, x); });
  }
  ++pos_;
  std::vector<float> last = X[0];
  if (n_streams > 1) {
    const Mix head = HyperMix("output_hc_", X, true);
    for (size_t d = 0; d < E; ++d) {
      double acc = 0;
      for (size_t k = 0; k < n_streams; ++k) acc += head.pre[k] * X[k][d];
      last[d] = static_cast<float>(acc);
    }
  }
  return Linear("output.weight", RmsNorm(last, W("output_norm.weight").data(), c_.rms_eps),
                c_.n_vocab);
}

std::vector<float> ReferenceDeepseek2::AttentionBlock(uint32_t il, const std::vector<float>& x,
                                                      double scale) {
  const size_t E = c_.n_embd, H = c_.n_head, dn = c_.qk_nope, dr = c_.qk_rope, dv = c_.v_head;
  const size_t Rkv = c_.kv_lora_rank, Rq = c_.q_lora_rank;
  const std::string p = "blk." + std::to_string(il) + ".";
  {
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
    return Linear(p + "attn_output.weight", o, E);
  }
}

std::vector<float> ReferenceDeepseek2::FeedForwardBlock(uint32_t il, const std::vector<float>& x) {
  const size_t E = c_.n_embd;
  const std::string p = "blk." + std::to_string(il) + ".";
  {
    const std::vector<float> h = RmsNorm(x, W(p + "ffn_norm.weight").data(), c_.rms_eps);
    std::vector<float> ffn;
    if (!c_.is_moe_layer(il)) {
      ffn =
          Mlp(p + "ffn_gate.weight", p + "ffn_up.weight", p + "ffn_down.weight", h, c_.n_ff, 0, 0);
    } else {
      const size_t X = c_.n_expert, K = c_.n_expert_used, Fe = c_.n_ff_exp;
      const std::vector<float> logits = Linear(p + "ffn_gate_inp.weight", h, X);
      std::vector<double> prob(X), sel(X);
      if (c_.gating == engine::GatingFunc::kSqrtSoftplus) {
        for (size_t e = 0; e < X; ++e) prob[e] = std::sqrt(std::log1p(std::exp(double{logits[e]})));
      } else if (c_.gating == engine::GatingFunc::kSigmoid) {
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
      const bool v4 = c_.is_v4();
      if (v4 && il < c_.v4.hash_layers) {  // the token's fixed experts (tid2eid)
        const std::vector<float>& table = W(p + "ffn_gate_tid2eid.weight");
        for (size_t k = 0; k < K; ++k) idx[k] = static_cast<size_t>(table[history_.back() * K + k]);
      }
      const float clamp_exp = v4 ? c_.v4.clamp_exp[il] : 0, clamp_sh = v4 ? c_.v4.clamp_shexp[il] : 0;
      double wsum = 0;
      for (size_t k = 0; k < K; ++k) wsum += prob[idx[k]];
      ffn.assign(E, 0.0f);
      for (size_t k = 0; k < K; ++k) {
        double w = prob[idx[k]];
        if (c_.expert_weights_norm) w /= v4 ? wsum + 1e-20 : wsum;
        w *= c_.expert_weights_scale;
        const std::vector<float> y =
            Mlp(p + "ffn_gate_exps.weight", p + "ffn_up_exps.weight", p + "ffn_down_exps.weight", h,
                Fe, idx[k] * Fe, idx[k] * E, clamp_exp);
        for (size_t i = 0; i < E; ++i) ffn[i] += static_cast<float>(w * y[i]);
      }
      if (c_.n_expert_shared > 0) {
        const std::vector<float> sh =
            Mlp(p + "ffn_gate_shexp.weight", p + "ffn_up_shexp.weight", p + "ffn_down_shexp.weight",
                h, Fe * c_.n_expert_shared, 0, 0, clamp_sh);
        for (size_t i = 0; i < E; ++i) ffn[i] += sh[i];
      }
    }
    return ffn;
  }
}

}  // namespace strata::testing

// V4 attention for the reference forward pass, from docs/MODEL.md §3.3 and §8, written
// the slow way: every compressed entry and every indexer choice is recomputed from the
// stored per-token projections for each query; no windows, rings or running state.
#include <algorithm>
#include <cmath>
#include <numeric>

#include "tests/engine/reference/deepseek2_reference.h"

namespace strata::testing {
namespace {

double Dot(const float* a, const float* b, size_t n) {
  double acc = 0;
  for (size_t i = 0; i < n; ++i) acc += static_cast<double>(a[i]) * b[i];
  return acc;
}

}  // namespace

// Adjacent pairs rotated by pos * theta_i, theta_i = base^(-2i/d). The compress table
// blends in YaRN's interpolated frequencies by the ramp between the correction dims,
// without YaRN's magnitude factor (transformers forces attention_factor = 1).
void ReferenceDeepseek2::RopeV4(float* x, int64_t pos, bool compress) const {
  const int d = static_cast<int>(c_.qk_rope);
  const double base = compress ? c_.v4.compress_rope_base : c_.rope_freq_base;
  const bool yarn = compress && c_.rope_scaling_factor > 1.0f;
  auto corr_dim = [&](double beta) {
    return d * std::log(c_.rope_orig_context / (beta * 2 * M_PI)) / (2 * std::log(base));
  };
  const double low = std::max(0.0, std::floor(corr_dim(c_.v4.yarn_beta_fast)));
  const double high = std::min(d - 1.0, std::ceil(corr_dim(c_.v4.yarn_beta_slow)));
  for (int i = 0; i < d / 2; ++i) {
    const double theta_extrap = static_cast<double>(pos) * std::pow(base, -2.0 * i / d);
    double theta = theta_extrap;
    if (yarn) {
      const double ramp = 1 - std::clamp((i - low) / std::max(0.001, high - low), 0.0, 1.0);
      theta = theta_extrap / c_.rope_scaling_factor * (1 - ramp) + theta_extrap * ramp;
    }
    const double cs = std::cos(theta), sn = std::sin(theta);
    const double x0 = x[2 * i], x1 = x[2 * i + 1];
    x[2 * i] = static_cast<float>(x0 * cs - x1 * sn);
    x[2 * i + 1] = static_cast<float>(x0 * sn + x1 * cs);
  }
}

// docs/MODEL.md §8.7 (HCA) and §8.8/§8.9 (CSA, overlapping): per channel, a softmax over
// the window's tokens of (gate + APE[slot]) weighting their kv; CSA entry w takes the
// first halves of window w-1 and the second halves of window w. Then RMSNorm and the
// compress rope at position w * ratio.
std::vector<float> ReferenceDeepseek2::CompressedEntry(uint32_t il, bool indexer, int64_t w) const {
  const std::string p = "blk." + std::to_string(il) + "." +
                        (indexer ? "indexer_compressor_" : "attn_compressor_");
  const int64_t ratio = c_.v4.ratio(il);
  const bool overlap = ratio == engine::kCsaRatio;
  const size_t dim = indexer ? c_.v4.index_dim : c_.v4.head_dim;
  const size_t width = (overlap ? 2 : 1) * dim;
  const std::vector<float>& ape = W(p + "ape.weight");  // [ratio][width]
  struct Slot {
    int64_t pos;
    size_t offset;  // 0: first half (Ca) or the whole row; dim: second half (Cb)
  };
  std::vector<Slot> slots;
  if (overlap && w > 0) {
    for (int64_t j = 0; j < ratio; ++j) slots.push_back({(w - 1) * ratio + j, 0});
  }
  for (int64_t j = 0; j < ratio; ++j) slots.push_back({w * ratio + j, overlap ? dim : 0});
  std::vector<float> entry(dim);
  for (size_t c = 0; c < dim; ++c) {
    std::vector<double> gate;
    for (const Slot& s : slots) {
      const V4Token& tok = v4_[il][static_cast<size_t>(s.pos)];
      const std::vector<float>& g = indexer ? tok.index_gate : tok.comp_gate;
      gate.push_back(g[s.offset + c] + ape[static_cast<size_t>(s.pos % ratio) * width + s.offset + c]);
    }
    const double mx = *std::max_element(gate.begin(), gate.end());
    double z = 0, acc = 0;
    for (size_t i = 0; i < slots.size(); ++i) {
      const V4Token& tok = v4_[il][static_cast<size_t>(slots[i].pos)];
      const std::vector<float>& kv = indexer ? tok.index_kv : tok.comp_kv;
      const double e = std::exp(gate[i] - mx);
      z += e;
      acc += e * kv[slots[i].offset + c];
    }
    entry[c] = static_cast<float>(acc / z);
  }
  entry = RmsNorm(entry, W(p + "norm.weight").data(), c_.rms_eps);
  RopeV4(&entry[dim - c_.qk_rope], w * ratio, true);
  return entry;
}

// docs/MODEL.md §8.9: score(s) = sum_h w_h relu(q_h . K_s) / sqrt(Id), w = proj(h) /
// sqrt(Ih), over the entries whose windows are complete; the top-k, in index order.
std::vector<int64_t> ReferenceDeepseek2::IndexerTopK(uint32_t il, const std::vector<float>& h,
                                                     const std::vector<float>& q_res) const {
  const std::string p = "blk." + std::to_string(il) + ".";
  const size_t Ih = c_.v4.index_heads, Id = c_.v4.index_dim;
  const int64_t count = (pos_ + 1) / engine::kCsaRatio;
  std::vector<int64_t> all(static_cast<size_t>(count));
  std::iota(all.begin(), all.end(), 0);
  if (count <= static_cast<int64_t>(c_.v4.index_topk)) return all;
  std::vector<float> q = Linear(p + "indexer.attn_q_b.weight", q_res, Ih * Id);
  for (size_t hh = 0; hh < Ih; ++hh) RopeV4(&q[hh * Id + Id - c_.qk_rope], pos_, true);
  const std::vector<float> w = Linear(p + "indexer.proj.weight", h, Ih);
  std::vector<double> score(static_cast<size_t>(count));
  for (int64_t s = 0; s < count; ++s) {
    const std::vector<float> key = CompressedEntry(il, true, s);
    for (size_t hh = 0; hh < Ih; ++hh) {
      score[s] += w[hh] / std::sqrt(double(Ih)) * std::max(0.0, Dot(&q[hh * Id], key.data(), Id)) /
                  std::sqrt(double(Id));
    }
  }
  std::stable_sort(all.begin(), all.end(), [&](int64_t a, int64_t b) { return score[a] > score[b]; });
  all.resize(c_.v4.index_topk);
  std::sort(all.begin(), all.end());
  return all;
}

std::vector<float> ReferenceDeepseek2::AttentionV4(uint32_t il, const std::vector<float>& x) {
  const std::string p = "blk." + std::to_string(il) + ".";
  const engine::V4Config& v = c_.v4;
  const size_t E = c_.n_embd, H = c_.n_head, D = v.head_dim, dr = c_.qk_rope;
  const int64_t ratio = v.ratio(il);
  const bool compress = ratio != 0;
  const std::vector<float> h = RmsNorm(x, W(p + "attn_norm.weight").data(), c_.rms_eps);
  const std::vector<float> q_res =
      RmsNorm(Linear(p + "attn_q_a.weight", h, c_.q_lora_rank), W(p + "attn_q_a_norm.weight").data(),
           c_.rms_eps);
  std::vector<float> q = Linear(p + "attn_q_b.weight", q_res, H * D);
  V4Token tok;
  tok.kv = RmsNorm(Linear(p + "attn_kv.weight", h, D), W(p + "attn_kv_a_norm.weight").data(),
                c_.rms_eps);
  RopeV4(&tok.kv[D - dr], pos_, compress);
  if (compress) {
    const size_t width = (ratio == engine::kCsaRatio ? 2 : 1) * D;
    tok.comp_kv = Linear(p + "attn_compressor_kv.weight", h, width);
    tok.comp_gate = Linear(p + "attn_compressor_gate.weight", h, width);
  }
  if (ratio == engine::kCsaRatio) {
    tok.index_kv = Linear(p + "indexer_compressor_kv.weight", h, 2 * v.index_dim);
    tok.index_gate = Linear(p + "indexer_compressor_gate.weight", h, 2 * v.index_dim);
  }
  v4_[il].push_back(tok);

  // The key set: the window (the last W positions, this one included), then the
  // compressed entries this query may see: all complete HCA windows, or the indexer's
  // choice among the complete CSA ones.
  std::vector<std::vector<float>> keys;
  for (int64_t s = std::max<int64_t>(0, pos_ - v.sliding_window + 1); s <= pos_; ++s) {
    keys.push_back(v4_[il][static_cast<size_t>(s)].kv);
  }
  if (ratio == engine::kHcaRatio) {
    for (int64_t w = 0; w < (pos_ + 1) / ratio; ++w) keys.push_back(CompressedEntry(il, false, w));
  } else if (ratio == engine::kCsaRatio) {
    for (int64_t w : IndexerTopK(il, h, q_res)) keys.push_back(CompressedEntry(il, false, w));
  }
  const std::vector<float>& sinks = W(p + "attn_sinks.weight");
  std::vector<float> o(H * D, 0.0f);
  for (size_t hh = 0; hh < H; ++hh) {
    std::vector<float> qh = RmsNorm(std::vector<float>(&q[hh * D], &q[(hh + 1) * D]), nullptr,
                                 c_.rms_eps);
    RopeV4(&qh[D - dr], pos_, compress);
    std::vector<double> logit;
    for (const auto& k : keys) logit.push_back(Dot(qh.data(), k.data(), D) / std::sqrt(double(D)));
    double mx = sinks[hh];
    for (double l : logit) mx = std::max(mx, l);
    double z = std::exp(sinks[hh] - mx);  // the sink's column, dropped after the softmax
    for (double& l : logit) z += l = std::exp(l - mx);
    std::vector<double> acc(D, 0.0);
    for (size_t i = 0; i < keys.size(); ++i) {
      for (size_t d = 0; d < D; ++d) acc[d] += logit[i] / z * keys[i][d];
    }
    for (size_t d = 0; d < D; ++d) o[hh * D + d] = static_cast<float>(acc[d]);
    RopeV4(&o[hh * D + D - dr], -pos_, compress);  // V = K is rotated: rotate back
  }
  // Grouped output (§8.6): group g's heads through rows [g*Ro, (g+1)*Ro) of
  // attn_output_a, the groups' outputs concatenated through attn_output_b.
  const size_t G = v.o_groups, Ro = v.o_lora_rank, in_g = H / G * D;
  std::vector<float> z;
  for (size_t g = 0; g < G; ++g) {
    const std::vector<float> part(&o[g * in_g], &o[(g + 1) * in_g]);
    const std::vector<float> zg = Linear(p + "attn_output_a.weight", part, Ro, g * Ro);
    z.insert(z.end(), zg.begin(), zg.end());
  }
  return Linear(p + "attn_output_b.weight", z, E);
}

}  // namespace strata::testing

#include "tools/synthetic_weights.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace strata::tools {
namespace {

uint64_t SplitMix64(uint64_t& x) {
  uint64_t z = (x += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

inline uint64_t Rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

// The router gate as the engine applies it: softmax or sigmoid over logits.
void Gate(engine::GatingFunc gating, const float* logits, int n, float* out) {
  if (gating == engine::GatingFunc::kSigmoid) {
    for (int e = 0; e < n; ++e) out[e] = 1.0f / (1.0f + std::exp(-logits[e]));
    return;
  }
  if (gating == engine::GatingFunc::kSqrtSoftplus) {
    for (int e = 0; e < n; ++e) {
      out[e] = std::sqrt(logits[e] > 20.0f ? logits[e] : std::log1p(std::exp(logits[e])));
    }
    return;
  }
  const float max = *std::max_element(logits, logits + n);
  float sum = 0;
  for (int e = 0; e < n; ++e) sum += out[e] = std::exp(logits[e] - max);
  for (int e = 0; e < n; ++e) out[e] /= sum;
}

}  // namespace

Rng::Rng(uint64_t seed) {
  for (auto& s : s_) s = SplitMix64(seed);
}

uint64_t Rng::Next() {
  const uint64_t result = Rotl(s_[1] * 5, 7) * 9;
  const uint64_t t = s_[1] << 17;
  s_[2] ^= s_[0];
  s_[3] ^= s_[1];
  s_[1] ^= s_[2];
  s_[0] ^= s_[3];
  s_[2] ^= t;
  s_[3] = Rotl(s_[3], 45);
  return result;
}

float Rng::Uniform01() { return static_cast<float>((Next() >> 40) + 1) * (1.0f / 16777216.0f); }

namespace {

// Marsaglia & Tsang's ziggurat (2000) with 128 strips: an exact standard normal that
// costs one random draw, one table lookup and one compare for ~99% of values (Box-Muller
// needs a log, a sqrt and a sin/cos per pair and made make-model CPU-bound).
struct ZigguratTables {
  uint32_t k[128];
  float w[128];
  float f[128];
  ZigguratTables() {
    constexpr double kM1 = 2147483648.0;
    double dn = 3.442619855899, tn = dn;
    const double vn = 9.91256303526217e-3;
    const double q = vn / std::exp(-0.5 * dn * dn);
    k[0] = static_cast<uint32_t>((dn / q) * kM1);
    k[1] = 0;
    w[0] = static_cast<float>(q / kM1);
    w[127] = static_cast<float>(dn / kM1);
    f[0] = 1.0f;
    f[127] = static_cast<float>(std::exp(-0.5 * dn * dn));
    for (int i = 126; i >= 1; --i) {
      dn = std::sqrt(-2.0 * std::log(vn / dn + std::exp(-0.5 * dn * dn)));
      k[i + 1] = static_cast<uint32_t>((dn / tn) * kM1);
      tn = dn;
      f[i] = static_cast<float>(std::exp(-0.5 * dn * dn));
      w[i] = static_cast<float>(dn / kM1);
    }
  }
};

const ZigguratTables& Ziggurat() {
  static const ZigguratTables tables;
  return tables;
}

}  // namespace

float Rng::Normal() {
  constexpr float kR = 3.442620f;
  const ZigguratTables& z = Ziggurat();
  for (;;) {
    const auto hz = static_cast<int32_t>(static_cast<uint32_t>(Next() >> 32));
    const uint32_t iz = static_cast<uint32_t>(hz) & 127;
    const uint32_t abs_hz = static_cast<uint32_t>(hz < 0 ? -static_cast<int64_t>(hz) : hz);
    const float x = static_cast<float>(hz) * z.w[iz];
    if (abs_hz < z.k[iz]) return x;
    if (iz == 0) {  // the tail beyond r: Marsaglia's exponential method
      float tx, ty;
      do {
        tx = -std::log(Uniform01()) / kR;
        ty = -std::log(Uniform01());
      } while (ty + ty < tx * tx);
      return hz > 0 ? kR + tx : -kR - tx;
    }
    if (z.f[iz] + Uniform01() * (z.f[iz - 1] - z.f[iz]) < std::exp(-0.5f * x * x)) return x;
  }
}

void Rng::FillNormal(float* out, int64_t n, float stddev, float mean) {
  for (int64_t i = 0; i < n; ++i) out[i] = mean + stddev * Normal();
}

uint64_t HashName(const std::string& name, uint64_t seed) {
  uint64_t h = 0xcbf29ce484222325ull ^ seed;  // FNV-1a, seeded
  for (unsigned char c : name) {
    h ^= c;
    h *= 0x100000001b3ull;
  }
  return SplitMix64(h);
}

WeightInit InitFor(const engine::TensorSpec& spec, const engine::Deepseek2Config& c) {
  using engine::TensorRole;
  // Projections keep unit variance (1/sqrt(fan_in)); the ones writing back into the
  // residual stream are damped by 1/sqrt(2 * n_layer), as GPT-2 initialises them, so
  // the stream grows slowly over depth instead of exploding.
  const float residual_damp = 1.0f / std::sqrt(2.0f * static_cast<float>(c.n_layer));
  auto fan_in = [&](uint64_t n) { return 1.0f / std::sqrt(static_cast<float>(n)); };
  const std::string& n = spec.name;
  switch (spec.role) {
    case TensorRole::kNorm:
      return {1.0f, 0.02f};
    case TensorRole::kEmbedding:
      return {0.0f, 1.0f};
    case TensorRole::kOutput:
      return {0.0f, fan_in(spec.ne[0])};
    case TensorRole::kRouter:
      return {0.0f, fan_in(spec.ne[0])};
    case TensorRole::kRouterBias:
      return {0.0f, 0.0f};
    case TensorRole::kHyperFn:
      return {0.0f, fan_in(spec.ne[0])};
    case TensorRole::kHyperParam:
      // scale near 1, base near 0: pre near 1/2, post near 1, comb near uniform.
      return n.ends_with("_scale.weight") ? WeightInit{1.0f, 0.1f} : WeightInit{0.0f, 0.5f};
    case TensorRole::kBias:
      return {0.0f, 0.02f};
    case TensorRole::kConv:
      return {0.0f, 0.2f};
    case TensorRole::kEngramTable:
      return {0.0f, 1.0f};
    case TensorRole::kSideMatrix:
      return {0.0f, fan_in(spec.ne[0])};
    case TensorRole::kSinks:
      return {0.0f, 1.0f};
    case TensorRole::kApe:
      return {0.0f, 0.5f};
    case TensorRole::kHashTable:
      return {0.0f, 0.0f};  // ids, written by their own producer
    case TensorRole::kMatrix:
    case TensorRole::kExpertStack: {
      // attn_k_b is stored transposed ([dn, Rkv, H]): it maps the latent (Rkv) to keys.
      const uint64_t in = n.ends_with("attn_k_b.weight") ? spec.ne[1] : spec.ne[0];
      float stddev = fan_in(in);
      if (n.ends_with("attn_output.weight") || n.ends_with("attn_output_b.weight") ||
          n.ends_with("ffn_down.weight") ||
          n.ends_with("ffn_down_exps.weight") || n.ends_with("ffn_down_shexp.weight") ||
          n.ends_with("engram_kv.weight") || n.ends_with("engram_v.weight")) {
        stddev *= residual_damp;
      }
      return {0.0f, stddev};
    }
  }
  return {0.0f, 0.0f};
}

void GenerateRow(const engine::TensorSpec& spec, const WeightInit& init, uint64_t seed,
                 uint64_t row, float* out) {
  const int64_t n = static_cast<int64_t>(spec.ne[0]);
  if (init.stddev == 0.0f) {
    std::fill(out, out + n, init.mean);
    return;
  }
  Rng rng(HashName(spec.name, seed) ^ (row * 0xD1B54A32D192ED03ull));
  rng.FillNormal(out, n, init.stddev, init.mean);
}

std::vector<double> ZipfTargetShares(uint32_t n_expert, uint32_t top_k, double skew,
                                     const std::vector<uint32_t>& rank_of_expert) {
  std::vector<double> share(n_expert);
  double sum = 0;
  for (uint32_t e = 0; e < n_expert; ++e) {
    share[e] = 1.0 / std::pow(static_cast<double>(rank_of_expert[e] + 1), skew);
    sum += share[e];
  }
  for (double& s : share) s = s / sum * top_k;
  // An expert is chosen at most once per token: cap shares just below 1 and hand the
  // excess to the uncapped experts in proportion, until nothing exceeds the cap.
  constexpr double kCap = 0.95;
  for (int iter = 0; iter < 64; ++iter) {
    double excess = 0, free_mass = 0;
    for (double& s : share) {
      if (s > kCap) {
        excess += s - kCap;
        s = kCap;
      } else if (s < kCap) {
        free_mass += s;
      }
    }
    if (excess <= 1e-12 || free_mass <= 0) break;
    for (double& s : share) {
      if (s < kCap) s += excess * s / free_mass;
    }
  }
  return share;
}

std::vector<float> CalibrateRouterBias(const engine::Deepseek2Config& c,
                                       const engine::TensorSpec& router_spec, uint64_t seed,
                                       double skew) {
  const uint32_t n_expert = c.n_expert, top_k = c.n_expert_used;
  std::vector<float> bias(n_expert, 0.0f);
  if (skew <= 0) return bias;

  // Popularity order: a seeded permutation, different in every layer.
  std::vector<uint32_t> order(n_expert);
  std::iota(order.begin(), order.end(), 0);
  Rng perm_rng(HashName(router_spec.name + "#popularity", seed));
  for (uint32_t i = n_expert - 1; i > 0; --i) {
    std::swap(order[i], order[perm_rng.Next() % (i + 1)]);
  }
  std::vector<uint32_t> rank_of(n_expert);
  for (uint32_t r = 0; r < n_expert; ++r) rank_of[order[r]] = r;
  const std::vector<double> target = ZipfTargetShares(n_expert, top_k, skew, rank_of);

  // Gate scores of probe hidden states (unit-variance, like a normed residual) under
  // the real router weights of this layer.
  constexpr int kProbes = 1024;
  const uint64_t E = router_spec.ne[0];
  const WeightInit init = InitFor(router_spec, c);
  std::vector<float> router(E * n_expert);
  for (uint32_t e = 0; e < n_expert; ++e) GenerateRow(router_spec, init, seed, e, &router[e * E]);
  std::vector<float> scores(static_cast<size_t>(kProbes) * n_expert);
  {
    Rng probe_rng(HashName(router_spec.name + "#probes", seed));
    std::vector<float> h(E), logits(n_expert);
    for (int p = 0; p < kProbes; ++p) {
      probe_rng.FillNormal(h.data(), static_cast<int64_t>(E), 1.0f, 0.0f);
      for (uint32_t e = 0; e < n_expert; ++e) {
        float acc = 0;
        for (uint64_t i = 0; i < E; ++i) acc += router[e * E + i] * h[i];
        logits[e] = acc;
      }
      Gate(c.gating, logits.data(), static_cast<int>(n_expert), &scores[p * n_expert]);
    }
  }
  float score_spread = 0;  // typical gap between scores: sets the bias step size
  for (float s : scores) score_spread += std::fabs(s - scores[0]);
  score_spread = std::max(score_spread / static_cast<float>(scores.size()), 1e-6f);

  // Each round: select top-k of (score + bias) per probe, compare shares with the
  // targets, and move each bias towards its target (DeepSeek's bias-update rule with
  // a proportional step that shrinks over the rounds).
  std::vector<uint32_t> idx(n_expert);
  std::vector<double> observed(n_expert);
  for (int round = 0; round < 300; ++round) {
    std::fill(observed.begin(), observed.end(), 0.0);
    for (int p = 0; p < kProbes; ++p) {
      const float* s = &scores[p * n_expert];
      std::iota(idx.begin(), idx.end(), 0);
      std::partial_sort(idx.begin(), idx.begin() + top_k, idx.end(), [&](uint32_t a, uint32_t b) {
        const float sa = s[a] + bias[a], sb = s[b] + bias[b];
        return sa != sb ? sa > sb : a < b;
      });
      for (uint32_t k = 0; k < top_k; ++k) observed[idx[k]] += 1.0 / kProbes;
    }
    const float step = score_spread * 2.0f * (1.0f - static_cast<float>(round) / 300.0f);
    for (uint32_t e = 0; e < n_expert; ++e) {
      bias[e] += step * static_cast<float>(target[e] - observed[e]);
    }
  }
  return bias;
}

}  // namespace strata::tools

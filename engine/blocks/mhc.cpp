#include "engine/blocks/mhc.h"

#include <cmath>
#include <vector>

namespace strata::engine {
namespace {

inline float Sigmoid(float x) { return 1.0f / (1.0f + std::exp(-x)); }

// m[r] = dot(row r of fn, X / rms(X)): the norm is unweighted over all n*E values.
void Project(const HcSite& site, const HcParams& p, const float* X, int64_t E, kernels::Isa isa,
             float* m) {
  const int64_t nE = static_cast<int64_t>(p.n) * E;
  float ss = 0;
  for (int64_t i = 0; i < nE; ++i) ss += X[i] * X[i];
  const float inv = 1.0f / std::sqrt(ss / static_cast<float>(nE) + p.rms_eps);
  thread_local std::vector<float> z;
  z.resize(static_cast<size_t>(nE));
  for (int64_t i = 0; i < nE; ++i) z[i] = X[i] * inv;
  const kernels::DotFn dot = kernels::GetDot(site.fn.type, isa);
  for (int64_t r = 0; r < site.fn.rows; ++r) m[r] = dot(nE, site.fn.row(r), z.data());
}

}  // namespace

void ComputeHcMix(const HcSite& site, const HcParams& p, const float* X, int64_t E,
                  kernels::Isa isa, HcMix* mix) {
  const uint32_t n = p.n;
  float m[(2 + kMaxHyperStreams) * kMaxHyperStreams];
  Project(site, p, X, E, isa, m);
  for (uint32_t k = 0; k < n; ++k) {
    mix->pre[k] = Sigmoid(m[k] * site.scale[0] + site.base[k]) + p.eps;
    mix->post[k] = 2.0f * Sigmoid(m[n + k] * site.scale[1] + site.base[n + k]);
  }
  float* c = mix->comb;
  for (uint32_t i = 0; i < n; ++i) {
    float row[kMaxHyperStreams];
    float max = -INFINITY;
    for (uint32_t j = 0; j < n; ++j) {
      row[j] = m[2 * n + i * n + j] * site.scale[2] + site.base[2 * n + i * n + j];
      max = std::fmax(max, row[j]);
    }
    float sum = 0;
    for (uint32_t j = 0; j < n; ++j) sum += row[j] = std::exp(row[j] - max);
    for (uint32_t j = 0; j < n; ++j) c[i * n + j] = row[j] / sum + p.eps;
  }
  auto normalize_cols = [&] {
    for (uint32_t j = 0; j < n; ++j) {
      float sum = 0;
      for (uint32_t i = 0; i < n; ++i) sum += c[i * n + j];
      for (uint32_t i = 0; i < n; ++i) c[i * n + j] /= sum + p.eps;
    }
  };
  normalize_cols();
  for (uint32_t it = 1; it < p.iters; ++it) {
    for (uint32_t i = 0; i < n; ++i) {
      float sum = 0;
      for (uint32_t j = 0; j < n; ++j) sum += c[i * n + j];
      for (uint32_t j = 0; j < n; ++j) c[i * n + j] /= sum + p.eps;
    }
    normalize_cols();
  }
}

void ComputeHcHeadPre(const HcSite& head, const HcParams& p, const float* X, int64_t E,
                      kernels::Isa isa, float* pre) {
  float m[kMaxHyperStreams];
  Project(head, p, X, E, isa, m);
  for (uint32_t k = 0; k < p.n; ++k) pre[k] = Sigmoid(m[k] * head.scale[0] + head.base[k]) + p.eps;
}

void HcCollapse(const float* pre, const float* X, uint32_t n, int64_t E, float* out) {
  for (int64_t d = 0; d < E; ++d) {
    float acc = 0;
    for (uint32_t k = 0; k < n; ++k) acc += pre[k] * X[k * E + d];
    out[d] = acc;
  }
}

void HcExpand(const HcMix& mix, uint32_t n, const float* y, int64_t E, float* X) {
  float in[kMaxHyperStreams];
  for (int64_t d = 0; d < E; ++d) {
    for (uint32_t j = 0; j < n; ++j) in[j] = X[j * E + d];
    for (uint32_t k = 0; k < n; ++k) {
      float acc = mix.post[k] * y[d];
      for (uint32_t j = 0; j < n; ++j) acc += mix.comb[j * n + k] * in[j];
      X[k * E + d] = acc;
    }
  }
}

}  // namespace strata::engine

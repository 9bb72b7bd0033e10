#include "engine/blocks/engram_block.h"

#include <algorithm>
#include <cmath>

#include "engine/engram_rows.h"
#include "engine/kernels/vector_ops.h"

namespace strata::engine {
namespace {

using kernels::RmsNorm;
using kernels::Silu;

// The signed-sqrt sigmoid gate of a stream's match with its key.
inline float Gate(float dot) {
  const float s = std::copysign(std::sqrt(std::max(std::fabs(dot), 1e-6f)), dot);
  return 1.0f / (1.0f + std::exp(-s));
}

std::vector<bool> TablesInRam(const DeepseekModel& model) {
  std::vector<bool> in_ram;
  for (const uint32_t il : model.config().engram.layer_ids) {
    in_ram.push_back(model.layer(il).engram_table != nullptr);
  }
  return in_ram;
}

}  // namespace

EngramBlock::EngramBlock(BlockContext& ctx)
    : ctx_(ctx),
      addresser_(ctx.c.engram, ctx.model.engram_rows(), TablesInRam(ctx.model)),
      history_before_(ctx.c.engram) {
  const EngramConfig& eg = ctx.c.engram;
  if (eg.module == EngramModule::kDemo) {
    ring_len_ = int64_t{eg.conv_kernel - 1} * eg.conv_dilation + 1;
    ring_.assign(static_cast<size_t>(eg.n_layers() * ring_len_ * ctx.c.hc_mult * ctx.c.n_embd), 0);
  }
}

Status EngramBlock::BeginChunk(const Chunk& chunk) {
  return addresser_.Address({chunk.tokens, static_cast<size_t>(chunk.n)});
}

// The ring's slots for positions [start, start + n), at most one full turn of it.
void EngramBlock::Checkpoint(int64_t start, int64_t n) {
  history_before_ = addresser_.Save();
  ring_start_ = start;
  ring_before_.clear();
  if (ring_.empty()) return;
  const int64_t R = ring_len_, slot = int64_t{ctx_.c.hc_mult} * ctx_.c.n_embd;
  const int64_t layers = static_cast<int64_t>(ctx_.c.engram.n_layers());
  const int64_t count = std::min(n, R);
  ring_before_.resize(static_cast<size_t>(layers * count * slot));
  for (int64_t l = 0; l < layers; ++l) {
    for (int64_t i = 0; i < count; ++i) {
      std::copy_n(&ring_[((l * R) + (start + i) % R) * slot], slot,
                  &ring_before_[(l * count + i) * slot]);
    }
  }
}

void EngramBlock::Rollback() {
  addresser_.Restore(history_before_);
  if (ring_before_.empty()) return;
  const int64_t R = ring_len_, slot = int64_t{ctx_.c.hc_mult} * ctx_.c.n_embd;
  const int64_t layers = static_cast<int64_t>(ctx_.c.engram.n_layers());
  const int64_t count = static_cast<int64_t>(ring_before_.size()) / (layers * slot);
  for (int64_t l = 0; l < layers; ++l) {
    for (int64_t i = 0; i < count; ++i) {
      std::copy_n(&ring_before_[(l * count + i) * slot], slot,
                  &ring_[((l * R) + (ring_start_ + i) % R) * slot]);
    }
  }
}

Status EngramBlock::Gather(uint32_t il, const Chunk& chunk) {
  const DeepseekLayer& L = ctx_.model.layer(il);
  const EngramConfig& eg = ctx_.c.engram;
  const int64_t n = chunk.n;
  const uint32_t l = static_cast<uint32_t>(L.engram), cols = eg.cols(), hd = eg.head_dim;
  const int64_t De = eg.embd();
  const uint64_t row_bytes = eg.row_bytes();
  e_.resize(static_cast<size_t>(n * De));
  std::vector<uint8_t> buf(row_bytes);
  addresser_.BeginLayer(l);
  // Every pinned row is taken even after a failure, so none stays pinned.
  Status failed;
  for (int64_t t = 0; t < n; ++t) {
    for (uint32_t col = 0; col < cols; ++col) {
      const uint64_t row = addresser_.row(l, t, col);
      const uint8_t* bytes = L.engram_table ? L.engram_table + row * row_bytes : buf.data();
      if (!L.engram_table) {
        if (Status s = addresser_.Take(l, row, buf.data()); !s.ok()) {
          if (failed.ok()) failed = s;
          continue;
        }
      }
      if (!failed.ok()) continue;
      if (!DecodeEngramRow(eg.encoding, bytes, hd, &e_[t * De + col * hd])) {
        failed = Status::Corruption(ctx_.model.file().path() + ": tensor 'blk." + std::to_string(il) +
                                    ".engram_embd.weight' row " + std::to_string(row) +
                                    " holds a NaN code or a scale of 255");
      }
    }
  }
  return failed;
}

Status EngramBlock::Forward(uint32_t il, const Chunk& chunk, int64_t row, Residual& x) {
  const DeepseekLayer& L = ctx_.model.layer(il);
  STRATA_RETURN_IF_ERROR(Gather(il, chunk));
  if (ctx_.c.engram.module == EngramModule::kV41) {
    ApplyV41(L, chunk, row, x);
  } else {
    ApplyDemo(L, chunk, row, x);
  }
  return Status::Ok();
}

void EngramBlock::ApplyV41(const DeepseekLayer& L, const Chunk& chunk, int64_t row,
                           Residual& x) {
  const Deepseek2Config& c = ctx_.c;
  const int64_t E = c.n_embd, HC = x.hc(), n = chunk.n;
  const float inv_sqrt_e = 1.0f / std::sqrt(static_cast<float>(E));
  // kv = engram_kv(e): HC keys then one value; each stream gates the value by how
  // well its (norm-weighted) state matches its key.
  const int64_t W = (HC + 1) * E;
  kv_.resize(static_cast<size_t>(n * W));
  kernels::MatMul(L.engram_kv, e_.data(), n, kv_.data(), ctx_.pool, ctx_.isa, ctx_.act);
  ctx_.pool.ParallelFor(n * HC, [&](int64_t begin, int64_t end) {
    for (int64_t tm = begin; tm < end; ++tm) {
      const int64_t t = tm / HC, m = tm % HC;
      float* h = x.streams(row + t) + m * E;
      const float* key = &kv_[t * W + m * E];
      const float* value = &kv_[t * W + HC * E];
      float hh = 0, kk = 0, dot = 0;
      for (int64_t d = 0; d < E; ++d) {
        hh += h[d] * h[d];
        kk += key[d] * key[d];
        dot += h[d] * L.engram_q_norm[m * E + d] * L.engram_k_norm[m * E + d] * key[d];
      }
      dot *= 1.0f / std::sqrt(hh / static_cast<float>(E) + c.rms_eps) /
             std::sqrt(kk / static_cast<float>(E) + c.rms_eps) * inv_sqrt_e;
      const float alpha = Gate(dot);
      for (int64_t d = 0; d < E; ++d) h[d] += alpha * value[d];
    }
  });
}

void EngramBlock::ApplyDemo(const DeepseekLayer& L, const Chunk& chunk, int64_t row,
                            Residual& x) {
  const Deepseek2Config& c = ctx_.c;
  const EngramConfig& eg = c.engram;
  const int64_t E = c.n_embd, HC = x.hc(), n = chunk.n;
  const float inv_sqrt_e = 1.0f / std::sqrt(static_cast<float>(E));
  // Demo form: per-stream keys and a shared value (with biases), gated as in ApplyV41, then
  // a causal depthwise conv (kernel K, dilation) over the normalised gated values.
  kv_.resize(static_cast<size_t>(n * HC * E));
  v_.resize(static_cast<size_t>(n * E));
  kernels::MatMul(L.engram_k, e_.data(), n, kv_.data(), ctx_.pool, ctx_.isa, ctx_.act);
  kernels::MatMul(L.engram_v, e_.data(), n, v_.data(), ctx_.pool, ctx_.isa, ctx_.act);
  const int64_t K = eg.conv_kernel, dil = eg.conv_dilation, R = ring_len_;
  float* ring = &ring_[static_cast<size_t>(L.engram) * R * HC * E];
  constexpr float kConvEps = 1e-5f;
  // Positions in order (each reads the ring entries of earlier ones); streams in
  // parallel inside a position.
  for (int64_t t = 0; t < n; ++t) {
    const int64_t pos = chunk.pos + t;
    ctx_.pool.ParallelFor(HC, [&](int64_t m0, int64_t m1) {
      std::vector<float> k(static_cast<size_t>(E)), q(static_cast<size_t>(E)),
          u(static_cast<size_t>(E));
      for (int64_t m = m0; m < m1; ++m) {
        float* h = x.streams(row + t) + m * E;
        const float* kraw = &kv_[(t * HC + m) * E];
        for (int64_t d = 0; d < E; ++d) k[d] = kraw[d] + L.engram_k_bias[m * E + d];
        RmsNorm(k.data(), &L.engram_k_norm[m * E], E, c.rms_eps, k.data());
        RmsNorm(h, &L.engram_q_norm[m * E], E, c.rms_eps, q.data());
        float dot = 0;
        for (int64_t d = 0; d < E; ++d) dot += k[d] * q[d];
        const float alpha = Gate(dot * inv_sqrt_e);
        for (int64_t d = 0; d < E; ++d) u[d] = alpha * (v_[t * E + d] + L.engram_v_bias[d]);
        float* cin = &ring[((pos % R) * HC + m) * E];
        RmsNorm(u.data(), &L.engram_conv_norm[m * E], E, kConvEps, cin);
        for (int64_t d = 0; d < E; ++d) {
          float acc = 0;
          for (int64_t j = 0; j < K; ++j) {
            const int64_t src = pos - (K - 1 - j) * dil;
            if (src < 0) continue;
            acc += L.engram_conv[j * HC * E + m * E + d] * ring[((src % R) * HC + m) * E + d];
          }
          h[d] += u[d] + Silu(acc);
        }
      }
    });
  }
}

void EngramBlock::Save(int64_t n_past, ByteWriter& out) const {
  (void)n_past;
  const prefetch::EngramHasher hasher = addresser_.Save();
  const std::vector<int64_t>& history = hasher.history();
  out.Put<uint64_t>(history.size());
  out.PutBytes(history.data(), history.size() * sizeof(int64_t));
  out.PutFloats(ring_);
}

bool EngramBlock::Load(int64_t n_past, ByteReader& in) {
  (void)n_past;
  uint64_t n = 0;
  if (!in.Get(&n) || n > 64) return false;
  std::vector<int64_t> history(n);
  prefetch::EngramHasher hasher = addresser_.Save();
  if (!in.GetBytes(history.data(), n * sizeof(int64_t)) || !hasher.SetHistory(history) ||
      !in.GetFloats(&ring_, ring_.size())) {
    return false;
  }
  addresser_.Restore(hasher);
  return true;
}

}  // namespace strata::engine

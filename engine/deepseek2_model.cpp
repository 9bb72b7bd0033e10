#include "engine/deepseek2_model.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <numeric>

#include "engine/engram_rows.h"
#include "engine/kernels/vector_ops.h"
#include "engine/quant/quantize.h"
#include "engine/session_memory.h"

namespace strata::engine {

using kernels::RmsNorm;
using kernels::RowDots;
using kernels::RowSlice;
using kernels::WeightMatrix;

namespace {

uint64_t NowNs() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                   std::chrono::steady_clock::now().time_since_epoch())
                                   .count());
}

inline float Silu(float x) { return x / (1.0f + std::exp(-x)); }

}  // namespace

Deepseek2Session::Deepseek2Session(const Deepseek2Model& model, uint32_t n_ctx,
                                   storage::GgmlType kv_type, Deepseek2Options options)
    : model_(model),
      c_(model.config()),
      options_(options),
      pool_(options.threads),
      // V4 keeps its own per-layer state (v4_state_) instead of the MLA cache.
      cache_(c_.is_v4() ? 0 : c_.n_layer, n_ctx, c_.kv_lora_rank, c_.qk_rope, kv_type),
      prefetcher_(model.experts(),
                  // Nothing to fetch when every bundle is resident or the page cache rules.
                  !model.experts() || model.experts()->mode() != "tiered"
                      ? prefetch::PrefetchMode::kOff
                      : options.prefetch,
                  options.lookahead, model.moe_layers()),
      hc_(c_.hc_mult) {
  if (c_.is_v4()) {
    const V4Config& v = c_.v4;
    for (uint32_t il = 0; il < c_.n_layer; ++il) {
      v4_state_.emplace_back(v.ratio(il), v.sliding_window, v.head_dim, v.index_dim,
                             static_cast<int>(c_.qk_rope));
      v4_state_.back().Reserve(n_ctx);
    }
  }
  const EngramConfig& eg = c_.engram;
  if (eg.enabled()) {
    hasher_.emplace(eg);
    if (eg.module == EngramModule::kDemo) {
      conv_ring_len_ = int64_t{eg.conv_kernel - 1} * eg.conv_dilation + 1;
      conv_ring_.assign(static_cast<size_t>(eg.n_layers() * conv_ring_len_ * hc_ * c_.n_embd), 0);
    }
  }
}

void Deepseek2Session::Reset() {
  n_past_ = 0;
  if (hasher_) hasher_->Reset();
  for (V4LayerState& s : v4_state_) s.Reset();
}

// The ring's slots for positions [start, start + n), at most one full turn of it.
std::vector<float> Deepseek2Session::SaveConvRing(int64_t start, int64_t n) const {
  if (conv_ring_.empty()) return {};
  const int64_t R = conv_ring_len_, slot = int64_t{hc_} * c_.n_embd;
  const int64_t layers = static_cast<int64_t>(c_.engram.n_layers());
  const int64_t count = std::min(n, R);
  std::vector<float> saved(static_cast<size_t>(layers * count * slot));
  for (int64_t l = 0; l < layers; ++l) {
    for (int64_t i = 0; i < count; ++i) {
      std::copy_n(&conv_ring_[((l * R) + (start + i) % R) * slot], slot,
                  &saved[(l * count + i) * slot]);
    }
  }
  return saved;
}

void Deepseek2Session::RestoreConvRing(int64_t start, const std::vector<float>& saved) {
  if (saved.empty()) return;
  const int64_t R = conv_ring_len_, slot = int64_t{hc_} * c_.n_embd;
  const int64_t layers = static_cast<int64_t>(c_.engram.n_layers());
  const int64_t count = static_cast<int64_t>(saved.size()) / (layers * slot);
  for (int64_t l = 0; l < layers; ++l) {
    for (int64_t i = 0; i < count; ++i) {
      std::copy_n(&saved[(l * count + i) * slot], slot,
                  &conv_ring_[((l * R) + (start + i) % R) * slot]);
    }
  }
}

Status Deepseek2Session::Eval(std::span<const int32_t> tokens, std::vector<float>* logits,
                              int64_t batch) {
  for (int32_t t : tokens) {
    if (t < 0 || static_cast<uint32_t>(t) >= c_.n_vocab) {
      return Status::InvalidArgument("token id " + std::to_string(t) +
                                     " is outside the vocabulary (" + std::to_string(c_.n_vocab) +
                                     " tokens)");
    }
  }
  if (n_past_ + static_cast<int64_t>(tokens.size()) > cache_.n_ctx()) {
    return Status::ResourceExhausted(
        "context full: " + std::to_string(n_past_) + " + " + std::to_string(tokens.size()) +
        " tokens exceed -c/--ctx-size " + std::to_string(cache_.n_ctx()));
  }
  // A chunk's Engram rows stay pinned in the row cache until its layers ran.
  batch = std::clamp<int64_t>(batch, 1, model_.engram_chunk_limit());
  const int64_t start = n_past_;
  // A failed chunk leaves the session as it was: position, hash history, and the conv
  // ring slots this call writes (positions start.., each slot position % ring).
  const std::optional<EngramHasher> hasher_before = hasher_;
  const std::vector<float> ring_before = SaveConvRing(start, static_cast<int64_t>(tokens.size()));
  // V4: entries are appended (truncated back) and state writes are logged (undone).
  v4_undo_.Clear();
  std::vector<std::pair<int64_t, int64_t>> entries_before;
  for (const V4LayerState& st : v4_state_) {
    entries_before.emplace_back(st.compressor.entries(), st.index_compressor.entries());
  }
  for (size_t first = 0; first < tokens.size(); first += static_cast<size_t>(batch)) {
    const int64_t n = std::min<int64_t>(batch, static_cast<int64_t>(tokens.size() - first));
    const bool last = first + static_cast<size_t>(n) == tokens.size();
    if (Status s = EvalChunk(tokens.data() + first, n, last, logits); !s.ok()) {
      n_past_ = start;
      hasher_ = hasher_before;
      RestoreConvRing(start, ring_before);
      v4_undo_.Rollback();
      for (size_t il = 0; il < v4_state_.size(); ++il) {
        v4_state_[il].compressor.Truncate(entries_before[il].first);
        v4_state_[il].index_compressor.Truncate(entries_before[il].second);
      }
      return s;
    }
  }
  v4_undo_.Clear();
  return Status::Ok();
}

Status Deepseek2Session::EvalChunk(const int32_t* tokens, int64_t n, bool want_logits,
                                   std::vector<float>* logits) {
  const int64_t E = c_.n_embd;
  uint64_t t0 = NowNs();
  prefetcher_.BeginToken();
  // If the chunk fails, the Engram layers it requested but did not reach still hold
  // pinned rows; the guard hands them back.
  engram_requested_ = engram_gathered_ = 0;
  struct Unpin {
    Deepseek2Session* s;
    int64_t n;
    ~Unpin() { s->ReleaseEngram(n); }
  } unpin{this, n};
  if (hasher_) STRATA_RETURN_IF_ERROR(AddressEngram(tokens, n));
  chunk_tokens_ = tokens;
  // V4's hash-routed layers: their experts follow from the token alone, so their reads
  // can start now, behind every layer in front of them.
  if (n == 1 && prefetcher_.router_lookahead()) {
    for (uint32_t il = 0; il < c_.n_layer; ++il) {
      const int32_t* ids = model_.layer(il).tid2eid;
      if (ids)
        prefetcher_.HintRouter(il, {ids + int64_t{tokens[0]} * c_.n_expert_used, c_.n_expert_used});
    }
  }
  // The residual: hc_ streams per token, each starting as the token's embedding.
  x_.resize(static_cast<size_t>(n * hc_ * E));
  const WeightMatrix& embd = model_.token_embd();
  for (int64_t t = 0; t < n; ++t) {
    float* X = &x_[t * hc_ * E];
    DequantizeRow(embd.type, embd.row(tokens[t]), E, X);
    for (uint32_t k = 1; k < hc_; ++k) std::copy_n(X, E, X + k * E);
  }
  y_.resize(static_cast<size_t>(n * E));
  for (uint32_t il = 0; il < c_.n_layer; ++il) {
    const Deepseek2Layer& L = model_.layer(il);
    const uint64_t t1 = NowNs();
    timings_.head_ns += t1 - t0;
    if (L.engram >= 0) {
      STRATA_RETURN_IF_ERROR(Engram(il, n));
      timings_.engram_ns += NowNs() - t1;
    }
    const uint64_t ta = NowNs();
    STRATA_RETURN_IF_ERROR(Site(L.hc_attn, n, [&](const float* in) {
      if (c_.is_v4()) {
        V4Attention(il, n, in);
      } else {
        Attention(il, n, in);
      }
      return Status::Ok();
    }));
    t0 = NowNs();
    timings_.attention_ns += t0 - ta;
    STRATA_RETURN_IF_ERROR(
        Site(L.hc_ffn, n, [&](const float* in) { return FeedForward(il, n, in); }));
    const uint64_t t2 = NowNs();
    timings_.feed_forward_ns += t2 - t0;
    t0 = t2;
  }
  n_past_ += n;
  if (!want_logits || !logits) return Status::Ok();
  std::vector<float> last(static_cast<size_t>(E));
  const float* final_in = &x_[(n - 1) * hc_ * E];
  if (hc_ > 1) {
    float pre[kMaxHyperStreams];
    ComputeHcHeadPre(model_.hc_head(), model_.hc_params(), final_in, E, options_.isa, pre);
    HcCollapse(pre, final_in, hc_, E, last.data());
    final_in = last.data();
  }
  RmsNorm(final_in, model_.output_norm(), E, c_.rms_eps, last.data());
  logits->resize(c_.n_vocab);
  kernels::MatVec(model_.output(), last.data(), logits->data(), pool_, options_.isa, act_);
  timings_.head_ns += NowNs() - t0;
  return Status::Ok();
}

template <typename SubBlock>
Status Deepseek2Session::Site(const HcSite& site, int64_t n, SubBlock&& sub_block) {
  const int64_t E = c_.n_embd;
  if (hc_ == 1) {
    STRATA_RETURN_IF_ERROR(sub_block(x_.data()));
    for (int64_t i = 0; i < n * E; ++i) x_[i] += y_[i];
    return Status::Ok();
  }
  // mHC: collapse the streams into the sub-block's input, then mix them and add the
  // output back with each stream's own weight. Per token, so any thread count agrees.
  uint64_t t0 = NowNs();
  const HcParams p = model_.hc_params();
  mix_.resize(static_cast<size_t>(n));
  site_in_.resize(static_cast<size_t>(n * E));
  pool_.ParallelFor(n, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) {
      const float* X = &x_[t * hc_ * E];
      ComputeHcMix(site, p, X, E, options_.isa, &mix_[t]);
      HcCollapse(mix_[t].pre, X, hc_, E, &site_in_[t * E]);
    }
  });
  timings_.hyper_ns += NowNs() - t0;
  STRATA_RETURN_IF_ERROR(sub_block(site_in_.data()));
  t0 = NowNs();
  pool_.ParallelFor(n, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) HcExpand(mix_[t], hc_, &y_[t * E], E, &x_[t * hc_ * E]);
  });
  timings_.hyper_ns += NowNs() - t0;
  return Status::Ok();
}

Status Deepseek2Session::AddressEngram(const int32_t* tokens, int64_t n) {
  const EngramConfig& eg = c_.engram;
  const size_t per_token = hasher_->rows_per_token();
  engram_ids_.resize(static_cast<size_t>(n) * per_token);
  for (int64_t t = 0; t < n; ++t) {
    hasher_->Next(tokens[t], true, std::span(&engram_ids_[t * per_token], per_token));
  }
  tiers::EngramRowCache* rows = model_.engram_rows();
  if (!rows) return Status::Ok();
  // Every layer's rows are asked for now, before layer 0 runs: the reads overlap the
  // layers in front of each Engram layer.
  std::vector<uint64_t> ids;
  for (uint32_t l = 0; l < eg.n_layers(); ++l) {
    if (!model_.layer(eg.layer_ids[l]).engram_table) {
      ids.clear();
      for (int64_t t = 0; t < n; ++t) {
        const uint64_t* r = &engram_ids_[t * per_token + l * eg.cols()];
        ids.insert(ids.end(), r, r + eg.cols());
      }
      STRATA_RETURN_IF_ERROR(rows->Request(l, ids));  // pins nothing when it fails
    }
    engram_requested_ = l + 1;
  }
  return Status::Ok();
}

void Deepseek2Session::ReleaseEngram(int64_t n) {
  tiers::EngramRowCache* rows = model_.engram_rows();
  if (!rows || engram_gathered_ >= engram_requested_) return;
  const EngramConfig& eg = c_.engram;
  std::vector<uint8_t> scratch(eg.row_bytes());
  const size_t per_token = hasher_->rows_per_token();
  for (uint32_t l = engram_gathered_; l < engram_requested_; ++l) {
    if (model_.layer(eg.layer_ids[l]).engram_table) continue;
    for (int64_t t = 0; t < n; ++t) {
      for (uint32_t col = 0; col < eg.cols(); ++col) {
        (void)rows->Take(l, engram_ids_[t * per_token + l * eg.cols() + col], scratch.data());
      }
    }
  }
  engram_gathered_ = engram_requested_;
}

Status Deepseek2Session::GatherEngram(uint32_t il, int64_t n) {
  const Deepseek2Layer& L = model_.layer(il);
  const EngramConfig& eg = c_.engram;
  const uint32_t l = static_cast<uint32_t>(L.engram), cols = eg.cols(), hd = eg.head_dim;
  const int64_t De = eg.embd();
  const size_t per_token = hasher_->rows_per_token();
  const uint64_t row_bytes = eg.row_bytes();
  engram_e_.resize(static_cast<size_t>(n * De));
  std::vector<uint8_t> buf(row_bytes);
  engram_gathered_ = l + 1;
  // Every pinned row is taken even after a failure, so none stays pinned.
  Status failed;
  for (int64_t t = 0; t < n; ++t) {
    for (uint32_t col = 0; col < cols; ++col) {
      const uint64_t row = engram_ids_[t * per_token + l * cols + col];
      const uint8_t* bytes = L.engram_table ? L.engram_table + row * row_bytes : buf.data();
      if (!L.engram_table) {
        if (Status s = model_.engram_rows()->Take(l, row, buf.data()); !s.ok()) {
          if (failed.ok()) failed = s;
          continue;
        }
      }
      if (!failed.ok()) continue;
      if (!DecodeEngramRow(eg.encoding, bytes, hd, &engram_e_[t * De + col * hd])) {
        failed = Status::Corruption(model_.file().path() + ": tensor 'blk." + std::to_string(il) +
                                    ".engram_embd.weight' row " + std::to_string(row) +
                                    " holds a NaN code or a scale of 255");
      }
    }
  }
  return failed;
}

Status Deepseek2Session::Engram(uint32_t il, int64_t n) {
  const Deepseek2Layer& L = model_.layer(il);
  const EngramConfig& eg = c_.engram;
  const int64_t E = c_.n_embd, HC = hc_;
  const kernels::Isa isa = options_.isa;
  STRATA_RETURN_IF_ERROR(GatherEngram(il, n));
  const float inv_sqrt_e = 1.0f / std::sqrt(static_cast<float>(E));
  auto gate = [](float dot) {
    const float s = std::copysign(std::sqrt(std::max(std::fabs(dot), 1e-6f)), dot);
    return 1.0f / (1.0f + std::exp(-s));
  };
  if (eg.module == EngramModule::kV41) {
    // kv = engram_kv(e): HC keys then one value; each stream gates the value by how
    // well its (norm-weighted) state matches its key.
    const int64_t W = (HC + 1) * E;
    engram_kv_.resize(static_cast<size_t>(n * W));
    kernels::MatMul(L.engram_kv, engram_e_.data(), n, engram_kv_.data(), pool_, isa, act_);
    pool_.ParallelFor(n * HC, [&](int64_t begin, int64_t end) {
      for (int64_t tm = begin; tm < end; ++tm) {
        const int64_t t = tm / HC, m = tm % HC;
        float* h = &x_[(t * HC + m) * E];
        const float* key = &engram_kv_[t * W + m * E];
        const float* value = &engram_kv_[t * W + HC * E];
        float hh = 0, kk = 0, dot = 0;
        for (int64_t d = 0; d < E; ++d) {
          hh += h[d] * h[d];
          kk += key[d] * key[d];
          dot += h[d] * L.engram_q_norm[m * E + d] * L.engram_k_norm[m * E + d] * key[d];
        }
        dot *= 1.0f / std::sqrt(hh / static_cast<float>(E) + c_.rms_eps) /
               std::sqrt(kk / static_cast<float>(E) + c_.rms_eps) * inv_sqrt_e;
        const float alpha = gate(dot);
        for (int64_t d = 0; d < E; ++d) h[d] += alpha * value[d];
      }
    });
    return Status::Ok();
  }
  // Demo form: per-stream keys and a shared value (with biases), gated as above, then
  // a causal depthwise conv (kernel K, dilation) over the normalised gated values.
  engram_kv_.resize(static_cast<size_t>(n * HC * E));
  engram_v_.resize(static_cast<size_t>(n * E));
  kernels::MatMul(L.engram_k, engram_e_.data(), n, engram_kv_.data(), pool_, isa, act_);
  kernels::MatMul(L.engram_v, engram_e_.data(), n, engram_v_.data(), pool_, isa, act_);
  const int64_t K = eg.conv_kernel, dil = eg.conv_dilation, R = conv_ring_len_;
  float* ring = &conv_ring_[static_cast<size_t>(L.engram) * R * HC * E];
  constexpr float kConvEps = 1e-5f;
  // Positions in order (each reads the ring entries of earlier ones); streams in
  // parallel inside a position.
  for (int64_t t = 0; t < n; ++t) {
    const int64_t pos = n_past_ + t;
    pool_.ParallelFor(HC, [&](int64_t m0, int64_t m1) {
      std::vector<float> k(static_cast<size_t>(E)), q(static_cast<size_t>(E)),
          u(static_cast<size_t>(E));
      for (int64_t m = m0; m < m1; ++m) {
        float* h = &x_[(t * HC + m) * E];
        const float* kraw = &engram_kv_[(t * HC + m) * E];
        for (int64_t d = 0; d < E; ++d) k[d] = kraw[d] + L.engram_k_bias[m * E + d];
        RmsNorm(k.data(), &L.engram_k_norm[m * E], E, c_.rms_eps, k.data());
        RmsNorm(h, &L.engram_q_norm[m * E], E, c_.rms_eps, q.data());
        float dot = 0;
        for (int64_t d = 0; d < E; ++d) dot += k[d] * q[d];
        const float alpha = gate(dot * inv_sqrt_e);
        for (int64_t d = 0; d < E; ++d) u[d] = alpha * (engram_v_[t * E + d] + L.engram_v_bias[d]);
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
  return Status::Ok();
}

void Deepseek2Session::Attention(uint32_t il, int64_t n, const float* in) {
  const Deepseek2Layer& L = model_.layer(il);
  const int64_t E = c_.n_embd, H = c_.n_head, dn = c_.qk_nope, dr = c_.qk_rope, dv = c_.v_head;
  const int64_t Rkv = c_.kv_lora_rank, Rq = c_.q_lora_rank, qdim = H * (dn + dr);
  const kernels::Isa isa = options_.isa;
  h_.resize(static_cast<size_t>(n * E));
  for (int64_t t = 0; t < n; ++t) RmsNorm(&in[t * E], L.attn_norm, E, c_.rms_eps, &h_[t * E]);

  // q = q_b(norm(q_a(h))) or q(h): [n][H][dn | dr]
  buf_b_.resize(static_cast<size_t>(n * qdim));
  if (Rq > 0) {
    buf_a_.resize(static_cast<size_t>(n * Rq));
    kernels::MatMul(L.q_a, h_.data(), n, buf_a_.data(), pool_, isa, act_);
    for (int64_t t = 0; t < n; ++t)
      RmsNorm(&buf_a_[t * Rq], L.q_a_norm, Rq, c_.rms_eps, &buf_a_[t * Rq]);
    kernels::MatMul(L.q_b, buf_a_.data(), n, buf_b_.data(), pool_, isa, act_);
  } else {
    kernels::MatMul(L.q, h_.data(), n, buf_b_.data(), pool_, isa, act_);
  }
  // [latent | rope key] = kv_a_mqa(h); the cache keeps norm(latent) and rope(key).
  buf_c_.resize(static_cast<size_t>(n * (Rkv + dr)));
  kernels::MatMul(L.kv_a_mqa, h_.data(), n, buf_c_.data(), pool_, isa, act_);
  for (int64_t t = 0; t < n; ++t) {
    const int64_t pos = n_past_ + t;
    float* kv = &buf_c_[t * (Rkv + dr)];
    RmsNorm(kv, L.kv_a_norm, Rkv, c_.rms_eps, kv);
    model_.rope().Apply(kv + Rkv, pos);
    cache_.Write(il, static_cast<uint32_t>(pos), kv, kv + Rkv);
    for (int64_t h = 0; h < H; ++h)
      model_.rope().Apply(&buf_b_[t * qdim + h * (dn + dr) + dn], pos);
  }

  // Attention in five phases; every output value is computed by one thread in a fixed
  // order, so results do not depend on the thread count.
  const int64_t kq = Rkv + dr;  // [latent | rope] width of a query and of a cache row
  const int64_t S = n_past_ + n;
  // 1. Absorbed queries, per (token, head): [k_b_h^T q_nope | q_pe].
  q_abs_.resize(static_cast<size_t>(n * H * kq));
  pool_.ParallelFor(n * H, [&](int64_t begin, int64_t end) {
    kernels::ActivationBuffer scratch;
    for (int64_t th = begin; th < end; ++th) {
      const int64_t t = th / H, h = th % H;
      const float* q = &buf_b_[t * qdim + h * (dn + dr)];
      RowDots(RowSlice(L.k_b, h * Rkv, Rkv), q, &q_abs_[th * kq], isa, scratch);
      std::copy_n(q + dn, dr, &q_abs_[th * kq + Rkv]);
    }
  });
  // 2. The cache rows in f32, converted once for every head and token of the chunk.
  rows_f32_.resize(static_cast<size_t>(S * kq));
  pool_.ParallelFor(
      S,
      [&](int64_t begin, int64_t end) {
        for (int64_t s = begin; s < end; ++s) {
          const uint8_t* row = cache_.Row(il, static_cast<uint32_t>(s));
          if (cache_.type() == storage::GgmlType::kF16) {
            kernels::ConvertF16ToF32(reinterpret_cast<const uint16_t*>(row), &rows_f32_[s * kq], kq,
                                     isa);
          } else {
            std::copy_n(reinterpret_cast<const float*>(row), kq, &rows_f32_[s * kq]);
          }
        }
      },
      16);
  attn_out_.resize(static_cast<size_t>(n * H * dv));
  o_lat_.resize(static_cast<size_t>(n * H * Rkv));
  const float kq_scale = model_.kq_scale();
  // Scores take n * H * S floats; token sub-batches keep that near kScoreFloats.
  const int64_t sub = std::max<int64_t>(1, kScoreFloats / (H * S));
  for (int64_t t0 = 0; t0 < n; t0 += sub) {
    const int64_t tn = std::min(sub, n - t0);
    probs_.resize(static_cast<size_t>(tn * H * S));
    // 3. Scores, split by cache position: a block of rows meets four heads at a time,
    // each token over its causal part of the block.
    pool_.ParallelFor(
        S,
        [&](int64_t begin, int64_t end) {
          for (int64_t t = std::max<int64_t>(0, begin - n_past_ - t0); t < tn; ++t) {
            const int64_t stop = std::min(end, n_past_ + t0 + t + 1);  // causal
            for (int64_t h = 0; h < H; h += 4) {
              kernels::DotsWithRows(&q_abs_[((t0 + t) * H + h) * kq], kq,
                                    static_cast<int>(std::min<int64_t>(4, H - h)),
                                    kernels::RowSet{&rows_f32_[begin * kq], kq}, stop - begin, kq,
                                    kq_scale, &probs_[(t * H + h) * S + begin], S, isa);
            }
          }
        },
        16);
    // 4. Softmax per (token, head) over its causal range.
    pool_.ParallelFor(tn * H, [&](int64_t begin, int64_t end) {
      for (int64_t th = begin; th < end; ++th) {
        const int64_t len = n_past_ + t0 + th / H + 1;
        float* p = &probs_[th * S];
        const float max = *std::max_element(p, p + len);
        float sum = 0;
        for (int64_t s = 0; s < len; ++s) sum += p[s] = std::exp(p[s] - max);
        const float inv = 1.0f / sum;
        for (int64_t s = 0; s < len; ++s) p[s] *= inv;
      }
    });
    // 5. Weighted latents, split by latent dimension: o_lat[t][h] = sum_s p * row_s,
    // summed over s in order. Strips of 32 latents of every cache row stay in L2 while
    // all heads of all tokens read them, four heads per pass over the strip.
    pool_.ParallelFor(
        Rkv,
        [&](int64_t r0, int64_t r1) {
          for (int64_t c0 = r0; c0 < r1; c0 += 32) {
            const int64_t cn = std::min<int64_t>(32, r1 - c0);
            for (int64_t t = 0; t < tn; ++t) {
              const int64_t len = n_past_ + t0 + t + 1;  // causal
              for (int64_t h = 0; h < H; h += 4) {
                const int64_t th = t * H + h;
                kernels::WeightedRowSums(&probs_[th * S], S,
                                         static_cast<int>(std::min<int64_t>(4, H - h)),
                                         kernels::RowSet{&rows_f32_[c0], kq}, len, cn,
                                         &o_lat_[(t0 * H + th) * Rkv + c0], Rkv, isa);
              }
            }
          }
        },
        64);
  }
  // 6. Value up-projection per (token, head).
  pool_.ParallelFor(n * H, [&](int64_t begin, int64_t end) {
    kernels::ActivationBuffer scratch;
    for (int64_t th = begin; th < end; ++th) {
      const int64_t h = th % H;
      RowDots(RowSlice(L.v_b, h * dv, dv), &o_lat_[th * Rkv], &attn_out_[th * dv], isa, scratch);
    }
  });
  kernels::MatMul(L.wo, attn_out_.data(), n, y_.data(), pool_, isa, act_);
}

void Deepseek2Session::SwiGlu(const WeightMatrix& gate, const WeightMatrix& up,
                              const WeightMatrix& down, int64_t gate_row0, int64_t down_row0,
                              int64_t ff, const float* x, int64_t n, float* out, float clamp) {
  const int64_t E = c_.n_embd;
  std::vector<float> g(static_cast<size_t>(n * ff)), u(static_cast<size_t>(n * ff));
  kernels::MatMulPair(RowSlice(gate, gate_row0, ff), RowSlice(up, gate_row0, ff), x, n, g.data(),
                      u.data(), pool_, options_.isa, act_);
  if (clamp > 0) {  // V4 (docs/MODEL.md §9): silu(min(gate, c)) * clamp(up, -c, c)
    for (int64_t i = 0; i < n * ff; ++i)
      g[i] = Silu(std::min(g[i], clamp)) * std::clamp(u[i], -clamp, clamp);
  } else {
    for (int64_t i = 0; i < n * ff; ++i) g[i] = Silu(g[i]) * u[i];
  }
  kernels::MatMul(RowSlice(down, down_row0, E), g.data(), n, out, pool_, options_.isa, act_);
}

Status Deepseek2Session::FeedForward(uint32_t il, int64_t n, const float* in) {
  const Deepseek2Layer& L = model_.layer(il);
  const int64_t E = c_.n_embd;
  for (int64_t t = 0; t < n; ++t) RmsNorm(&in[t * E], L.ffn_norm, E, c_.rms_eps, &h_[t * E]);
  if (L.moe) return Moe(il, n);
  SwiGlu(L.ffn_gate, L.ffn_up, L.ffn_down, 0, 0, c_.n_ff, h_.data(), n, y_.data());
  return Status::Ok();
}

void Deepseek2Session::ExpertSwiGlu(const Deepseek2Layer& L, const tiers::ExpertView& v,
                                    const float* x, int64_t n, float* out) {
  const int64_t E = c_.n_embd, Fe = c_.n_ff_exp;
  const WeightMatrix gate{L.gate_exps.type, E, Fe, v.gate, L.gate_exps.row_bytes};
  const WeightMatrix up{L.up_exps.type, E, Fe, v.up, L.up_exps.row_bytes};
  const WeightMatrix down{L.down_exps.type, Fe, E, v.down, L.down_exps.row_bytes};
  SwiGlu(gate, up, down, 0, 0, Fe, x, n, out, L.clamp_exp);
}

void Deepseek2Session::HintLookahead(uint32_t il, const float* h) {
  std::vector<float> logits(c_.n_expert);
  for (const uint32_t next : prefetcher_.LayersAfter(il)) {
    const Deepseek2Layer& N = model_.layer(next);
    if (N.tid2eid) {  // a hash layer's experts are known from the token alone: exact
      const int32_t* ids = &N.tid2eid[int64_t{chunk_tokens_[0]} * c_.n_expert_used];
      prefetcher_.HintRouter(next, std::vector<int32_t>(ids, ids + c_.n_expert_used));
      continue;
    }
    kernels::MatVec(N.router, h, logits.data(), pool_, options_.isa, act_);
    prefetcher_.HintRouter(next, RouteToken(c_, logits.data(), N.router_bias).ids);
  }
}

Status Deepseek2Session::Moe(uint32_t il, int64_t n) {
  const Deepseek2Layer& L = model_.layer(il);
  const int64_t E = c_.n_embd, X = c_.n_expert, K = c_.n_expert_used, Fe = c_.n_ff_exp;
  std::vector<float> logits(static_cast<size_t>(n * X));
  kernels::MatMul(L.router, h_.data(), n, logits.data(), pool_, options_.isa, act_);
  std::vector<RoutedExperts> routes(static_cast<size_t>(n));
  for (int64_t t = 0; t < n; ++t) {
    const int32_t* fixed = L.tid2eid ? &L.tid2eid[int64_t{chunk_tokens_[t]} * K] : nullptr;
    routes[t] = RouteToken(c_, &logits[t * X], L.router_bias, fixed);
  }

  // Batch-union: each expert chosen in this chunk runs once over all its tokens.
  std::vector<std::vector<std::pair<int64_t, int64_t>>> users(static_cast<size_t>(X));
  for (int64_t t = 0; t < n; ++t) {
    for (int64_t k = 0; k < K; ++k) users[routes[t].ids[k]].emplace_back(t, k);
  }
  std::vector<int32_t> chosen;
  for (int32_t e = 0; e < X; ++e) {
    if (!users[e].empty()) chosen.push_back(e);
  }
  // Ask for the bundles first, so their reads overlap the shared expert and each
  // other; then look ahead for the next layers.
  tiers::ExpertCache* cache = model_.experts();
  if (cache) cache->Demand(il, chosen);
  if (n == 1) {
    prefetcher_.OnRouted(il, routes[0].ids);
    if (prefetcher_.router_lookahead()) HintLookahead(il, h_.data());
  }
  std::vector<float> shared(static_cast<size_t>(n * E), 0.0f);
  if (c_.n_expert_shared > 0) {
    SwiGlu(L.gate_shexp, L.up_shexp, L.down_shexp, 0, 0, Fe * c_.n_expert_shared, h_.data(), n,
           shared.data(), L.clamp_shexp);
  }
  // Experts in arrival order: what is resident computes while the rest is read.
  // Each result lands in its (token, k) place, so the order does not change the sums.
  std::vector<float> expert_out(static_cast<size_t>(n * K * E));
  std::vector<float> xs, ys;
  Status failed;
  for (size_t i = 0; i < chosen.size(); ++i) {
    int32_t e = chosen[i];
    tiers::ExpertView view;
    tiers::ExpertPin pin;
    if (cache) {
      const uint64_t w0 = NowNs();
      Result<tiers::ExpertPin> next = cache->Next();
      timings_.wait_ns += NowNs() - w0;
      if (!next.ok()) {
        if (failed.ok()) failed = next.status();
        continue;  // keep draining: every demanded bundle must be handed out
      }
      pin = std::move(next).value();
      e = static_cast<int32_t>(pin.expert());
      view = pin.view();
    } else {
      view = {L.gate_exps.row(e * Fe), L.up_exps.row(e * Fe), L.down_exps.row(e * E)};
    }
    if (!failed.ok()) continue;
    const auto& who = users[e];
    const int64_t m = static_cast<int64_t>(who.size());
    xs.resize(static_cast<size_t>(m * E));
    ys.resize(static_cast<size_t>(m * E));
    for (int64_t j = 0; j < m; ++j) std::copy_n(&h_[who[j].first * E], E, &xs[j * E]);
    const uint64_t c0 = NowNs();
    ExpertSwiGlu(L, view, xs.data(), m, ys.data());
    timings_.experts_ns += NowNs() - c0;
    for (int64_t j = 0; j < m; ++j) {
      std::copy_n(&ys[j * E], E, &expert_out[(who[j].first * K + who[j].second) * E]);
    }
  }
  if (!failed.ok()) return failed;
  for (int64_t t = 0; t < n; ++t) {
    for (int64_t i = 0; i < E; ++i) {
      float acc = 0;
      for (int64_t k = 0; k < K; ++k) acc += routes[t].weights[k] * expert_out[(t * K + k) * E + i];
      y_[t * E + i] = acc + shared[t * E + i];
    }
  }
  return Status::Ok();
}

}  // namespace strata::engine

#include "engine/blocks/v4_attention.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "engine/kernels/vector_ops.h"

namespace strata::engine {

using kernels::RmsNorm;
using kernels::RowSlice;

V4Attention::V4Attention(BlockContext& ctx, uint32_t n_ctx) : ctx_(ctx) {
  const Deepseek2Config& c = ctx.c;
  const V4Config& v = c.v4;
  for (uint32_t il = 0; il < c.n_layer; ++il) {
    state_.emplace_back(v.ratio(il), v.sliding_window, v.head_dim, v.index_dim,
                        static_cast<int>(c.qk_rope));
    state_.back().Reserve(n_ctx);
  }
}

// Entries are appended (truncated back on rollback); every other write is logged.
void V4Attention::Checkpoint(int64_t start, int64_t n) {
  (void)start, (void)n;
  undo_.Clear();
  entries_before_.clear();
  for (const V4LayerState& st : state_) {
    entries_before_.emplace_back(st.compressor.entries(), st.index_compressor.entries());
  }
}

void V4Attention::Rollback() {
  undo_.Rollback();
  for (size_t il = 0; il < state_.size(); ++il) {
    state_[il].compressor.Truncate(entries_before_[il].first);
    state_[il].index_compressor.Truncate(entries_before_[il].second);
  }
}

void V4Attention::Reset() {
  for (V4LayerState& s : state_) s.Reset();
}

void V4Attention::Indexer(uint32_t il, const Chunk& chunk, const float* h, const float* q_res,
                          std::vector<std::vector<int64_t>>* selected) {
  const Deepseek2Config& c = ctx_.c;
  const DeepseekModel& model = ctx_.model;
  const DeepseekLayer& L = model.layer(il);
  const int64_t n = chunk.n, past = chunk.pos;
  ThreadPool& pool = ctx_.pool;
  kernels::ActivationBuffer& act = ctx_.act;
  const V4Config& v = c.v4;
  const int64_t Ih = v.index_heads, Id = v.index_dim, dr = c.qk_rope;
  const Compressor& keys = state_[il].index_compressor;
  std::vector<float> q(static_cast<size_t>(n * Ih * Id)), w(static_cast<size_t>(n * Ih));
  kernels::MatMul(L.v4.index_q_b, q_res, n, q.data(), pool, ctx_.isa, act);
  kernels::MatMul(L.v4.index_proj, h, n, w.data(), pool, ctx_.isa, act);
  const Rope& rope = model.rope(il);
  const float head_scale = 1.0f / std::sqrt(static_cast<float>(Ih));
  const float dim_scale = 1.0f / std::sqrt(static_cast<float>(Id));
  const kernels::DotFn dot = kernels::GetDot(storage::GgmlType::kF32, ctx_.isa);
  selected->assign(static_cast<size_t>(n), {});
  std::vector<float> scores;
  for (int64_t t = 0; t < n; ++t) {
    const int64_t pos = past + t;
    for (int64_t hh = 0; hh < Ih; ++hh) rope.Apply(&q[(t * Ih + hh) * Id + Id - dr], pos);
    const int64_t count = (pos + 1) / kCsaRatio;  // entries whose windows are complete
    std::vector<int64_t>& out = (*selected)[t];
    out.resize(static_cast<size_t>(count));
    std::iota(out.begin(), out.end(), 0);
    if (count <= static_cast<int64_t>(v.index_topk)) continue;
    // score(s) = sum_h w_h relu(q_h . K_s) / sqrt(Id), each by one thread.
    scores.resize(static_cast<size_t>(count));
    pool.ParallelFor(
        count,
        [&](int64_t s0, int64_t s1) {
          for (int64_t s = s0; s < s1; ++s) {
            float acc = 0;
            for (int64_t hh = 0; hh < Ih; ++hh) {
              const float qk = dot(Id, &q[(t * Ih + hh) * Id], keys.entry(s));
              acc += w[t * Ih + hh] * head_scale * std::max(qk, 0.0f) * dim_scale;
            }
            scores[s] = acc;
          }
        },
        64);
    std::partial_sort(out.begin(), out.begin() + v.index_topk, out.end(),
                      [&](int64_t a, int64_t b) {
                        return scores[a] != scores[b] ? scores[a] > scores[b] : a < b;
                      });
    out.resize(v.index_topk);
    std::sort(out.begin(), out.end());
  }
}

void V4Attention::Forward(uint32_t il, const Chunk& chunk, const float* in, float* out) {
  const Deepseek2Config& c = ctx_.c;
  const DeepseekModel& model = ctx_.model;
  const DeepseekLayer& L = model.layer(il);
  const int64_t n = chunk.n, past = chunk.pos;
  ThreadPool& pool = ctx_.pool;
  kernels::ActivationBuffer& act = ctx_.act;
  std::vector<float>& hn = ctx_.h;
  const V4AttentionWeights& a = L.v4;
  const V4Config& v = c.v4;
  V4LayerState& state = state_[il];
  const int64_t E = c.n_embd, H = c.n_head, D = v.head_dim, dr = c.qk_rope;
  const int64_t Rq = c.q_lora_rank, W = v.sliding_window;
  const kernels::Isa isa = ctx_.isa;
  const Rope& rope = model.rope(il);
  hn.resize(static_cast<size_t>(n * E));
  for (int64_t t = 0; t < n; ++t) RmsNorm(&in[t * E], L.attn_norm, E, c.rms_eps, &hn[t * E]);

  // q_res = norm(q_a h) [n][Rq]; q = q_b q_res [n][H][D], each head RMS-normalised
  // (unweighted) and roped on its last dr values. kv = norm(attn_kv h), roped: the
  // one head that is both key and value.
  q_res_.resize(static_cast<size_t>(n * Rq));
  kernels::MatMul(L.q_a, hn.data(), n, q_res_.data(), pool, isa, act);
  for (int64_t t = 0; t < n; ++t)
    RmsNorm(&q_res_[t * Rq], L.q_a_norm, Rq, c.rms_eps, &q_res_[t * Rq]);
  q_.resize(static_cast<size_t>(n * H * D));
  kernels::MatMul(L.q_b, q_res_.data(), n, q_.data(), pool, isa, act);
  kv_.resize(static_cast<size_t>(n * D));
  kernels::MatMul(a.kv, hn.data(), n, kv_.data(), pool, isa, act);
  for (int64_t t = 0; t < n; ++t) {
    const int64_t pos = past + t;
    float* kv = &kv_[t * D];
    RmsNorm(kv, a.kv_norm, D, c.rms_eps, kv);
    rope.Apply(kv + D - dr, pos);
    for (int64_t hh = 0; hh < H; ++hh) {
      float* q = &q_[(t * H + hh) * D];
      RmsNorm(q, nullptr, D, c.rms_eps, q);
      rope.Apply(q + D - dr, pos);
    }
  }

  // The compressors take the chunk's tokens in order; an entry exists once its window
  // is complete, so every query below finds the entries it may see.
  if (a.ratio != 0) {
    auto feed = [&](const CompressorWeights& cw, Compressor& comp) {
      const int64_t width = cw.kv.rows;
      std::vector<float> kv(static_cast<size_t>(n * width)), gate(kv.size());
      kernels::MatMul(cw.kv, hn.data(), n, kv.data(), pool, isa, act);
      kernels::MatMul(cw.gate, hn.data(), n, gate.data(), pool, isa, act);
      for (int64_t t = 0; t < n; ++t) {
        comp.Add(past + t, &kv[t * width], &gate[t * width], cw, c.rms_eps, rope, undo_);
      }
    };
    feed(a.compressor, state.compressor);
    if (a.ratio == kCsaRatio) feed(a.index_compressor, state.index_compressor);
  }
  std::vector<std::vector<int64_t>> selected;
  if (a.ratio == kCsaRatio) Indexer(il, chunk, hn.data(), q_res_.data(), &selected);

  // Each query's keys: the window's, then the compressed entries in index order; its
  // softmax also counts the head's sink; o = sum p k.
  auto window_key = [&](int64_t pos) {
    return pos >= past ? &kv_[(pos - past) * D] : &state.window[(pos % W) * D];
  };
  auto entries_of = [&](int64_t t, int64_t pos) -> int64_t {
    if (a.ratio == kHcaRatio) return (pos + 1) / kHcaRatio;
    if (a.ratio == kCsaRatio) return static_cast<int64_t>(selected[t].size());
    return 0;
  };
  auto entry = [&](int64_t t, int64_t i) {
    return a.ratio == kCsaRatio ? state.compressor.entry(selected[t][i])
                                : state.compressor.entry(i);
  };
  attn_out_.resize(static_cast<size_t>(n * H * D));
  const float scale = model.kq_scale();
  // Per token and block of four heads, by one thread each: the heads share every key
  // (one KV head), so each key row is loaded once for the four of them.
  const int64_t head_blocks = (H + 3) / 4;
  pool.ParallelFor(n * head_blocks, [&](int64_t begin, int64_t end) {
    std::vector<const float*> keys;
    std::vector<float> logits;
    for (int64_t u = begin; u < end; ++u) {
      const int64_t t = u / head_blocks, h0 = u % head_blocks * 4, pos = past + t;
      const int m = static_cast<int>(std::min<int64_t>(4, H - h0));
      const int64_t first = std::max<int64_t>(0, pos - W + 1), nw = pos - first + 1;
      const int64_t ne = entries_of(t, pos), len = nw + ne;
      keys.resize(static_cast<size_t>(len));
      for (int64_t i = 0; i < nw; ++i) keys[i] = window_key(first + i);
      for (int64_t i = 0; i < ne; ++i) keys[nw + i] = entry(t, i);
      const kernels::RowSet rows{.ptrs = keys.data()};
      logits.resize(static_cast<size_t>(m * len));
      kernels::DotsWithRows(&q_[(t * H + h0) * D], D, m, rows, len, D, scale, logits.data(),
                            len, isa);
      for (int j = 0; j < m; ++j) {
        float* l = &logits[j * len];
        const float sink = a.sinks[h0 + j];
        float max = sink;
        for (int64_t i = 0; i < len; ++i) max = std::max(max, l[i]);
        float sum = std::exp(sink - max);
        for (int64_t i = 0; i < len; ++i) sum += l[i] = std::exp(l[i] - max);
        const float inv = 1.0f / sum;
        for (int64_t i = 0; i < len; ++i) l[i] *= inv;
      }
      float* o = &attn_out_[(t * H + h0) * D];
      kernels::WeightedRowSums(logits.data(), len, m, rows, len, D, o, D, isa);
      // o's rope part rotated back to the query's position (V = K carries the rotation):
      // the inverse rotation, angle -pos * theta.
      for (int j = 0; j < m; ++j) rope.Apply(o + j * D + D - dr, -pos);
    }
  });
  for (int64_t t = 0; t < n; ++t) {
    const int64_t pos = past + t;
    counters_.window_keys += static_cast<uint64_t>(std::min<int64_t>(pos + 1, W));
    (a.ratio == kHcaRatio ? counters_.hca_entries : counters_.csa_entries) +=
        static_cast<uint64_t>(entries_of(t, pos));
  }

  // Grouped output: group g's heads (H/G of them, contiguous) through its own slice
  // of attn_output_a, then all groups through attn_output_b.
  const int64_t G = v.o_groups, Ro = v.o_lora_rank, in_g = H / G * D;
  std::vector<float> group_in(static_cast<size_t>(n * in_g)),
      group_out(static_cast<size_t>(n * Ro));
  std::vector<float> z(static_cast<size_t>(n * G * Ro));
  for (int64_t g = 0; g < G; ++g) {
    for (int64_t t = 0; t < n; ++t) {
      std::copy_n(&attn_out_[t * H * D + g * in_g], in_g, &group_in[t * in_g]);
    }
    kernels::MatMul(RowSlice(a.wo_a, g * Ro, Ro), group_in.data(), n, group_out.data(), pool, isa,
                    act);
    for (int64_t t = 0; t < n; ++t) std::copy_n(&group_out[t * Ro], Ro, &z[(t * G + g) * Ro]);
  }
  kernels::MatMul(a.wo_b, z.data(), n, out, pool, isa, act);

  // The window keeps the last W keys; written after every query read the old ones.
  for (int64_t t = std::max<int64_t>(0, n - W); t < n; ++t) {
    float* slot = &state.window[((past + t) % W) * D];
    undo_.Save(slot, static_cast<size_t>(D));
    std::copy_n(&kv_[t * D], D, slot);
  }
}

void V4Attention::Save(int64_t n_past, ByteWriter& out) const {
  (void)n_past;  // the window and compressors hold what the position needs
  out.Put<uint32_t>(static_cast<uint32_t>(state_.size()));
  for (const V4LayerState& layer : state_) layer.Save(out);
}

bool V4Attention::Load(int64_t n_past, ByteReader& in) {
  (void)n_past;
  undo_.Clear();
  uint32_t layers = 0;
  if (!in.Get(&layers) || layers != state_.size()) return false;
  for (V4LayerState& layer : state_) {
    if (!layer.Load(in)) return false;
  }
  return true;
}

}  // namespace strata::engine

// DeepSeek-V4 attention in the deepseek2 engine (docs/MODEL.md §8): binding the
// deepseek4 tensors and the per-chunk computation. Shapes in GGML ne order (docs/GGUF.md §3.2).
#include <algorithm>
#include <cmath>
#include <numeric>

#include "engine/deepseek2_model.h"
#include "engine/kernels/vector_ops.h"
#include "engine/quant/quantize.h"

namespace strata::engine {

using kernels::RmsNorm;
using kernels::RowSlice;
using kernels::WeightMatrix;

Result<const float*> Deepseek2Model::FloatTensor(const std::string& name,
                                                 std::vector<uint64_t> ne) {
  STRATA_ASSIGN_OR_RETURN(WeightMatrix m, file_->RowTable(name, std::move(ne)));
  if (!m.data) return Status::InvalidArgument(file_->path() + ": tensor '" + name + "' not loaded");
  if (m.type == storage::GgmlType::kF32) return reinterpret_cast<const float*>(m.data);
  if (!CanDequantize(m.type)) {
    return Status::Unsupported(file_->path() + ": tensor '" + name + "' type " +
                               std::string(storage::TypeName(m.type)) + " unsupported");
  }
  std::vector<float> values(static_cast<size_t>(m.rows * m.cols));
  for (int64_t r = 0; r < m.rows; ++r) DequantizeRow(m.type, m.row(r), m.cols, &values[r * m.cols]);
  owned_.push_back(std::move(values));
  return owned_.back().data();
}

Status Deepseek2Model::BindCompressor(const std::string& prefix, uint64_t width, uint64_t dim,
                                      uint32_t ratio, CompressorWeights* out) {
  const uint64_t E = config_.n_embd;
  STRATA_ASSIGN_OR_RETURN(out->kv, file_->Matrix(prefix + "kv.weight", {E, width}));
  STRATA_ASSIGN_OR_RETURN(out->gate, file_->Matrix(prefix + "gate.weight", {E, width}));
  STRATA_ASSIGN_OR_RETURN(out->ape, FloatTensor(prefix + "ape.weight", {width, ratio}));
  STRATA_ASSIGN_OR_RETURN(out->norm, file_->Vector(prefix + "norm.weight", dim));
  return Status::Ok();
}

Status Deepseek2Model::BindV4Attention(uint32_t il) {
  const Deepseek2Config& c = config_;
  const V4Config& v = c.v4;
  const ModelFile& f = *file_;
  Deepseek2Layer& L = layers_[il];
  V4AttentionWeights& a = L.v4;
  const std::string p = "blk." + std::to_string(il) + ".";
  const uint64_t E = c.n_embd, H = c.n_head, D = v.head_dim, Rq = c.q_lora_rank;
  const uint64_t G = v.o_groups, Ro = v.o_lora_rank;
  STRATA_ASSIGN_OR_RETURN(L.q_a, f.Matrix(p + "attn_q_a.weight", {E, Rq}));
  STRATA_ASSIGN_OR_RETURN(L.q_a_norm, f.Vector(p + "attn_q_a_norm.weight", Rq));
  STRATA_ASSIGN_OR_RETURN(L.q_b, f.Matrix(p + "attn_q_b.weight", {Rq, H * D}));
  STRATA_ASSIGN_OR_RETURN(a.kv, f.Matrix(p + "attn_kv.weight", {E, D}));
  STRATA_ASSIGN_OR_RETURN(a.kv_norm, f.Vector(p + "attn_kv_a_norm.weight", D));
  // Some upstream forks store attn_output_a as [H*D/G, Ro, G]: the same bytes.
  const std::string wo_a = p + "attn_output_a.weight";
  const storage::TensorInfo* wo_a_info = f.gguf().FindTensor(wo_a);
  const bool grouped_3d = wo_a_info && wo_a_info->n_dims == 3;
  STRATA_ASSIGN_OR_RETURN(a.wo_a,
                          f.Matrix(wo_a, grouped_3d ? std::vector<uint64_t>{H * D / G, Ro, G}
                                                    : std::vector<uint64_t>{H * D / G, G * Ro}));
  STRATA_ASSIGN_OR_RETURN(a.wo_b, f.Matrix(p + "attn_output_b.weight", {G * Ro, E}));
  STRATA_ASSIGN_OR_RETURN(a.sinks, f.Vector(p + "attn_sinks.weight", H));
  a.ratio = v.ratio(il);
  if (a.ratio == 0) return Status::Ok();
  STRATA_RETURN_IF_ERROR(
      BindCompressor(p + "attn_compressor_", v.compressor_width(il), D, a.ratio, &a.compressor));
  if (a.ratio != kCsaRatio) return Status::Ok();
  const uint64_t Ih = v.index_heads, Id = v.index_dim;
  STRATA_ASSIGN_OR_RETURN(a.index_q_b, f.Matrix(p + "indexer.attn_q_b.weight", {Rq, Ih * Id}));
  STRATA_ASSIGN_OR_RETURN(a.index_proj, f.Matrix(p + "indexer.proj.weight", {E, Ih}));
  return BindCompressor(p + "indexer_compressor_", 2 * Id, Id, kCsaRatio, &a.index_compressor);
}

Status Deepseek2Model::BindHashRouting(uint32_t il) {
  const Deepseek2Config& c = config_;
  const std::string name = "blk." + std::to_string(il) + ".ffn_gate_tid2eid.weight";
  STRATA_ASSIGN_OR_RETURN(WeightMatrix t, file_->RowTable(name, {c.n_expert_used, c.n_vocab}));
  if (t.type != storage::GgmlType::kI32 || !t.data) {
    return Status::Corruption(file_->path() + ": tensor '" + name + "' must be a loaded I32 table");
  }
  const int32_t* ids = reinterpret_cast<const int32_t*>(t.data);
  for (uint64_t i = 0; i < uint64_t{c.n_vocab} * c.n_expert_used; ++i) {
    if (ids[i] < 0 || static_cast<uint32_t>(ids[i]) >= c.n_expert) {
      return Status::Corruption(file_->path() + ": tensor '" + name + "' names expert " +
                                std::to_string(ids[i]) + " for token " +
                                std::to_string(i / c.n_expert_used) + " (the model has " +
                                std::to_string(c.n_expert) + ")");
    }
  }
  layers_[il].tid2eid = ids;
  return Status::Ok();
}

void Deepseek2Session::V4Indexer(uint32_t il, int64_t n, const float* h, const float* q_res,
                                 std::vector<std::vector<int64_t>>* selected) {
  const Deepseek2Layer& L = model_.layer(il);
  const V4Config& v = c_.v4;
  const int64_t Ih = v.index_heads, Id = v.index_dim, dr = c_.qk_rope;
  const Compressor& keys = v4_state_[il].index_compressor;
  std::vector<float> q(static_cast<size_t>(n * Ih * Id)), w(static_cast<size_t>(n * Ih));
  kernels::MatMul(L.v4.index_q_b, q_res, n, q.data(), pool_, options_.isa, act_);
  kernels::MatMul(L.v4.index_proj, h, n, w.data(), pool_, options_.isa, act_);
  const Rope& rope = model_.rope(il);
  const float head_scale = 1.0f / std::sqrt(static_cast<float>(Ih));
  const float dim_scale = 1.0f / std::sqrt(static_cast<float>(Id));
  const kernels::DotFn dot = kernels::GetDot(storage::GgmlType::kF32, options_.isa);
  selected->assign(static_cast<size_t>(n), {});
  std::vector<float> scores;
  for (int64_t t = 0; t < n; ++t) {
    const int64_t pos = n_past_ + t;
    for (int64_t hh = 0; hh < Ih; ++hh) rope.Apply(&q[(t * Ih + hh) * Id + Id - dr], pos);
    const int64_t count = (pos + 1) / kCsaRatio;  // entries whose windows are complete
    std::vector<int64_t>& out = (*selected)[t];
    out.resize(static_cast<size_t>(count));
    std::iota(out.begin(), out.end(), 0);
    if (count <= static_cast<int64_t>(v.index_topk)) continue;
    // score(s) = sum_h w_h relu(q_h . K_s) / sqrt(Id), each by one thread.
    scores.resize(static_cast<size_t>(count));
    pool_.ParallelFor(
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

void Deepseek2Session::V4Attention(uint32_t il, int64_t n, const float* in) {
  const Deepseek2Layer& L = model_.layer(il);
  const V4AttentionWeights& a = L.v4;
  const V4Config& v = c_.v4;
  V4LayerState& state = v4_state_[il];
  const int64_t E = c_.n_embd, H = c_.n_head, D = v.head_dim, dr = c_.qk_rope;
  const int64_t Rq = c_.q_lora_rank, W = v.sliding_window;
  const kernels::Isa isa = options_.isa;
  const Rope& rope = model_.rope(il);
  h_.resize(static_cast<size_t>(n * E));
  for (int64_t t = 0; t < n; ++t) RmsNorm(&in[t * E], L.attn_norm, E, c_.rms_eps, &h_[t * E]);

  // q_res = norm(q_a h) [n][Rq]; q = q_b q_res [n][H][D], each head RMS-normalised
  // (unweighted) and roped on its last dr values. kv = norm(attn_kv h), roped: the
  // one head that is both key and value.
  buf_a_.resize(static_cast<size_t>(n * Rq));
  kernels::MatMul(L.q_a, h_.data(), n, buf_a_.data(), pool_, isa, act_);
  for (int64_t t = 0; t < n; ++t)
    RmsNorm(&buf_a_[t * Rq], L.q_a_norm, Rq, c_.rms_eps, &buf_a_[t * Rq]);
  buf_b_.resize(static_cast<size_t>(n * H * D));
  kernels::MatMul(L.q_b, buf_a_.data(), n, buf_b_.data(), pool_, isa, act_);
  buf_c_.resize(static_cast<size_t>(n * D));
  kernels::MatMul(a.kv, h_.data(), n, buf_c_.data(), pool_, isa, act_);
  for (int64_t t = 0; t < n; ++t) {
    const int64_t pos = n_past_ + t;
    float* kv = &buf_c_[t * D];
    RmsNorm(kv, a.kv_norm, D, c_.rms_eps, kv);
    rope.Apply(kv + D - dr, pos);
    for (int64_t hh = 0; hh < H; ++hh) {
      float* q = &buf_b_[(t * H + hh) * D];
      RmsNorm(q, nullptr, D, c_.rms_eps, q);
      rope.Apply(q + D - dr, pos);
    }
  }

  // The compressors take the chunk's tokens in order; an entry exists once its window
  // is complete, so every query below finds the entries it may see.
  if (a.ratio != 0) {
    auto feed = [&](const CompressorWeights& cw, Compressor& comp) {
      const int64_t width = cw.kv.rows;
      std::vector<float> kv(static_cast<size_t>(n * width)), gate(kv.size());
      kernels::MatMul(cw.kv, h_.data(), n, kv.data(), pool_, isa, act_);
      kernels::MatMul(cw.gate, h_.data(), n, gate.data(), pool_, isa, act_);
      for (int64_t t = 0; t < n; ++t) {
        comp.Add(n_past_ + t, &kv[t * width], &gate[t * width], cw, c_.rms_eps, rope, v4_undo_);
      }
    };
    feed(a.compressor, state.compressor);
    if (a.ratio == kCsaRatio) feed(a.index_compressor, state.index_compressor);
  }
  std::vector<std::vector<int64_t>> selected;
  if (a.ratio == kCsaRatio) V4Indexer(il, n, h_.data(), buf_a_.data(), &selected);

  // Each query's keys: the window's, then the compressed entries in index order; its
  // softmax also counts the head's sink; o = sum p k.
  auto window_key = [&](int64_t pos) {
    return pos >= n_past_ ? &buf_c_[(pos - n_past_) * D] : &state.window[(pos % W) * D];
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
  const float scale = model_.kq_scale();
  // Per token and block of four heads, by one thread each: the heads share every key
  // (one KV head), so each key row is loaded once for the four of them.
  const int64_t head_blocks = (H + 3) / 4;
  pool_.ParallelFor(n * head_blocks, [&](int64_t begin, int64_t end) {
    std::vector<const float*> keys;
    std::vector<float> logits;
    for (int64_t u = begin; u < end; ++u) {
      const int64_t t = u / head_blocks, h0 = u % head_blocks * 4, pos = n_past_ + t;
      const int m = static_cast<int>(std::min<int64_t>(4, H - h0));
      const int64_t first = std::max<int64_t>(0, pos - W + 1), nw = pos - first + 1;
      const int64_t ne = entries_of(t, pos), len = nw + ne;
      keys.resize(static_cast<size_t>(len));
      for (int64_t i = 0; i < nw; ++i) keys[i] = window_key(first + i);
      for (int64_t i = 0; i < ne; ++i) keys[nw + i] = entry(t, i);
      const kernels::RowSet rows{.ptrs = keys.data()};
      logits.resize(static_cast<size_t>(m * len));
      kernels::DotsWithRows(&buf_b_[(t * H + h0) * D], D, m, rows, len, D, scale, logits.data(),
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
    const int64_t pos = n_past_ + t;
    v4_counters_.window_keys += static_cast<uint64_t>(std::min<int64_t>(pos + 1, W));
    (a.ratio == kHcaRatio ? v4_counters_.hca_entries : v4_counters_.csa_entries) +=
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
    kernels::MatMul(RowSlice(a.wo_a, g * Ro, Ro), group_in.data(), n, group_out.data(), pool_, isa,
                    act_);
    for (int64_t t = 0; t < n; ++t) std::copy_n(&group_out[t * Ro], Ro, &z[(t * G + g) * Ro]);
  }
  kernels::MatMul(a.wo_b, z.data(), n, y_.data(), pool_, isa, act_);

  // The window keeps the last W keys; written after every query read the old ones.
  for (int64_t t = std::max<int64_t>(0, n - W); t < n; ++t) {
    float* slot = &state.window[((n_past_ + t) % W) * D];
    v4_undo_.Save(slot, static_cast<size_t>(D));
    std::copy_n(&buf_c_[t * D], D, slot);
  }
}

}  // namespace strata::engine

#include "engine/deepseek2_model.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <numeric>

#include "engine/kernels/vector_ops.h"
#include "engine/quant/quantize.h"

namespace strata::engine {

using kernels::WeightMatrix;

namespace {

uint64_t NowNs() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                   std::chrono::steady_clock::now().time_since_epoch())
                                   .count());
}

void RmsNorm(const float* x, const float* w, int64_t n, float eps, float* out) {
  float sum = 0;
  for (int64_t i = 0; i < n; ++i) sum += x[i] * x[i];
  const float scale = 1.0f / std::sqrt(sum / static_cast<float>(n) + eps);
  for (int64_t i = 0; i < n; ++i) out[i] = x[i] * scale * w[i];
}

inline float Silu(float x) { return x / (1.0f + std::exp(-x)); }

// Rows [row0, row0 + rows) of `w` as a matrix of their own (one head, one expert).
WeightMatrix Rows(const WeightMatrix& w, int64_t row0, int64_t rows) {
  return {w.type, w.cols, rows, w.row(row0), w.row_bytes};
}

// y[r] = dot(row r of w, x) on the calling thread only.
void RowDots(const WeightMatrix& w, const float* x, float* y, kernels::Isa isa,
             kernels::ActivationBuffer& scratch) {
  const uint8_t* act = scratch.Prepare(w.type, x, w.cols);
  const kernels::DotFn dot = kernels::GetDot(w.type, isa);
  for (int64_t r = 0; r < w.rows; ++r) y[r] = dot(w.cols, w.row(r), act);
}

}  // namespace

RoutedExperts RouteToken(const Deepseek2Config& c, const float* logits, const float* bias) {
  const int n = static_cast<int>(c.n_expert);
  std::vector<float> probs(n), select(n);
  if (c.gating == GatingFunc::kSigmoid) {
    for (int e = 0; e < n; ++e) probs[e] = 1.0f / (1.0f + std::exp(-logits[e]));
  } else {
    const float max = *std::max_element(logits, logits + n);
    float sum = 0;
    for (int e = 0; e < n; ++e) sum += probs[e] = std::exp(logits[e] - max);
    for (int e = 0; e < n; ++e) probs[e] /= sum;
  }
  for (int e = 0; e < n; ++e) select[e] = probs[e] + (bias ? bias[e] : 0.0f);

  // Group-limited routing: keep the best n_group_used groups, scored by the sum of
  // their two best (biased) scores (V3), or by their best score without a bias (V2).
  const int groups = static_cast<int>(c.n_group);
  if (groups > 1 && c.n_group_used < c.n_group) {
    const int per = n / groups;
    std::vector<float> group_score(groups);
    for (int g = 0; g < groups; ++g) {
      std::vector<float> v(select.begin() + g * per, select.begin() + (g + 1) * per);
      std::sort(v.begin(), v.end(), std::greater<>());
      group_score[g] = bias ? v[0] + (per > 1 ? v[1] : 0.0f) : v[0];
    }
    std::vector<int> order(groups);
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(),
                     [&](int a, int b) { return group_score[a] > group_score[b]; });
    for (int rank = static_cast<int>(c.n_group_used); rank < groups; ++rank) {
      const int g = order[rank];
      for (int e = g * per; e < (g + 1) * per; ++e)
        select[e] = -std::numeric_limits<float>::infinity();
    }
  }
  std::vector<int> order(n);
  std::iota(order.begin(), order.end(), 0);
  const int k = static_cast<int>(c.n_expert_used);
  std::partial_sort(order.begin(), order.begin() + k, order.end(), [&](int a, int b) {
    return select[a] != select[b] ? select[a] > select[b] : a < b;
  });
  RoutedExperts r;
  float sum = 0;
  for (int i = 0; i < k; ++i) {
    r.ids.push_back(order[i]);
    r.weights.push_back(probs[order[i]]);
    sum += probs[order[i]];
  }
  for (float& w : r.weights) {
    if (c.expert_weights_norm) w /= std::max(sum, 6.103515625e-5f);
    w *= c.expert_weights_scale;
  }
  return r;
}

Result<std::unique_ptr<Deepseek2Model>> Deepseek2Model::Load(std::unique_ptr<ModelFile> file,
                                                             tiers::ExpertCache* experts) {
  auto m = std::unique_ptr<Deepseek2Model>(new Deepseek2Model());
  m->experts_ = experts;
  STRATA_ASSIGN_OR_RETURN(m->config_, Deepseek2Config::FromGguf(file->gguf()));
  m->file_ = std::move(file);
  const Deepseek2Config& c = m->config_;
  const ModelFile& f = *m->file_;
  if (const auto* tokens = f.gguf().Find("tokenizer.ggml.tokens");
      tokens && tokens->items().size() != c.n_vocab) {
    return Status::Corruption(f.path() + ": the vocabulary has " +
                              std::to_string(tokens->items().size()) +
                              " tokens but vocab_size is " + std::to_string(c.n_vocab));
  }
  STRATA_ASSIGN_OR_RETURN(m->token_embd_, f.Matrix("token_embd.weight", {c.n_embd, c.n_vocab}));
  STRATA_ASSIGN_OR_RETURN(m->output_, f.Matrix("output.weight", {c.n_embd, c.n_vocab}));
  STRATA_ASSIGN_OR_RETURN(m->output_norm_, f.Vector("output_norm.weight", c.n_embd));
  if (!CanDequantize(m->token_embd_.type)) {
    return Status::Unsupported(f.path() + ": token_embd type " +
                               std::string(storage::TypeName(m->token_embd_.type)) +
                               " unsupported");
  }
  const bool yarn = c.rope_scaling_type == "yarn" && c.rope_scaling_factor > 1.0f;
  const YarnFactors yf =
      yarn ? ComputeYarnFactors(c.rope_scaling_factor, c.yarn_log_multiplier) : YarnFactors{};
  m->rope_ = std::make_unique<Rope>(RopeParams{
      .n_dims = static_cast<int>(c.qk_rope),
      .freq_base = c.rope_freq_base,
      .freq_scale = yarn ? 1.0f / c.rope_scaling_factor : 1.0f,
      .n_ctx_orig = static_cast<int>(c.rope_orig_context ? c.rope_orig_context : c.context_length),
      .yarn = yarn,
      .mscale = yf.rope_mscale});
  m->kq_scale_ = AttentionScale(static_cast<int>(c.qk_nope + c.qk_rope), yf);
  m->layers_.resize(c.n_layer);
  for (uint32_t il = 0; il < c.n_layer; ++il) STRATA_RETURN_IF_ERROR(m->BindLayer(il));
  return m;
}

std::vector<uint32_t> Deepseek2Model::moe_layers() const {
  std::vector<uint32_t> out;
  for (uint32_t il = 0; il < config_.n_layer; ++il) {
    if (layers_[il].moe) out.push_back(il);
  }
  return out;
}

Status Deepseek2Model::BindLayer(uint32_t il) {
  const Deepseek2Config& c = config_;
  const ModelFile& f = *file_;
  Deepseek2Layer& L = layers_[il];
  const std::string p = "blk." + std::to_string(il) + ".";
  const uint64_t E = c.n_embd, H = c.n_head, dn = c.qk_nope, dr = c.qk_rope, dv = c.v_head;
  const uint64_t Rkv = c.kv_lora_rank, Rq = c.q_lora_rank;
  STRATA_ASSIGN_OR_RETURN(L.attn_norm, f.Vector(p + "attn_norm.weight", E));
  if (Rq > 0) {
    STRATA_ASSIGN_OR_RETURN(L.q_a, f.Matrix(p + "attn_q_a.weight", {E, Rq}));
    STRATA_ASSIGN_OR_RETURN(L.q_a_norm, f.Vector(p + "attn_q_a_norm.weight", Rq));
    STRATA_ASSIGN_OR_RETURN(L.q_b, f.Matrix(p + "attn_q_b.weight", {Rq, H * (dn + dr)}));
  } else {
    STRATA_ASSIGN_OR_RETURN(L.q, f.Matrix(p + "attn_q.weight", {E, H * (dn + dr)}));
  }
  STRATA_ASSIGN_OR_RETURN(L.kv_a_mqa, f.Matrix(p + "attn_kv_a_mqa.weight", {E, Rkv + dr}));
  STRATA_ASSIGN_OR_RETURN(L.kv_a_norm, f.Vector(p + "attn_kv_a_norm.weight", Rkv));
  if (c.legacy_kv_b) {
    STRATA_RETURN_IF_ERROR(SplitLegacyKvB(il));
  } else {
    STRATA_ASSIGN_OR_RETURN(L.k_b, f.Matrix(p + "attn_k_b.weight", {dn, Rkv, H}));
    STRATA_ASSIGN_OR_RETURN(L.v_b, f.Matrix(p + "attn_v_b.weight", {Rkv, dv, H}));
  }
  STRATA_ASSIGN_OR_RETURN(L.wo, f.Matrix(p + "attn_output.weight", {H * dv, E}));
  STRATA_ASSIGN_OR_RETURN(L.ffn_norm, f.Vector(p + "ffn_norm.weight", E));
  L.moe = c.is_moe_layer(il);
  if (!L.moe) {
    STRATA_ASSIGN_OR_RETURN(L.ffn_gate, f.Matrix(p + "ffn_gate.weight", {E, c.n_ff}));
    STRATA_ASSIGN_OR_RETURN(L.ffn_up, f.Matrix(p + "ffn_up.weight", {E, c.n_ff}));
    STRATA_ASSIGN_OR_RETURN(L.ffn_down, f.Matrix(p + "ffn_down.weight", {c.n_ff, E}));
    return Status::Ok();
  }
  const uint64_t X = c.n_expert, Fe = c.n_ff_exp, S = c.n_expert_shared;
  STRATA_ASSIGN_OR_RETURN(L.router, f.Matrix(p + "ffn_gate_inp.weight", {E, X}));
  if (f.gguf().FindTensor(p + "exp_probs_b.bias")) {
    STRATA_ASSIGN_OR_RETURN(L.router_bias, f.Vector(p + "exp_probs_b.bias", X));
  }
  STRATA_ASSIGN_OR_RETURN(L.gate_exps, f.Matrix(p + "ffn_gate_exps.weight", {E, Fe, X}));
  STRATA_ASSIGN_OR_RETURN(L.up_exps, f.Matrix(p + "ffn_up_exps.weight", {E, Fe, X}));
  STRATA_ASSIGN_OR_RETURN(L.down_exps, f.Matrix(p + "ffn_down_exps.weight", {Fe, E, X}));
  if (!experts_ && !L.gate_exps.data) {
    return Status::InvalidArgument(f.path() + ": layer " + std::to_string(il) +
                                   "'s routed experts were not loaded and no expert cache is set");
  }
  if (experts_ && !experts_->plan().moe_layer(il)) {
    return Status::InvalidArgument(f.path() + ": layer " + std::to_string(il) +
                                   " is a MoE layer the residency plan does not know");
  }
  if (S > 0) {
    STRATA_ASSIGN_OR_RETURN(L.gate_shexp, f.Matrix(p + "ffn_gate_shexp.weight", {E, Fe * S}));
    STRATA_ASSIGN_OR_RETURN(L.up_shexp, f.Matrix(p + "ffn_up_shexp.weight", {E, Fe * S}));
    STRATA_ASSIGN_OR_RETURN(L.down_shexp, f.Matrix(p + "ffn_down_shexp.weight", {Fe * S, E}));
  }
  return Status::Ok();
}

Status Deepseek2Model::SplitLegacyKvB(uint32_t il) {
  // attn_kv_b [Rkv, H*(dn+dv)]: per head, dn key rows then dv value rows, each Rkv
  // long. k_b wants, per head, Rkv rows of dn (the transpose); v_b the value rows as-is.
  const Deepseek2Config& c = config_;
  const std::string name = "blk." + std::to_string(il) + ".attn_kv_b.weight";
  const uint64_t H = c.n_head, dn = c.qk_nope, dv = c.v_head, Rkv = c.kv_lora_rank;
  STRATA_ASSIGN_OR_RETURN(WeightMatrix kv_b, file_->Matrix(name, {Rkv, H * (dn + dv)}));
  if (!CanDequantize(kv_b.type)) {
    return Status::Unsupported(file_->path() + ": tensor '" + name + "' type " +
                               std::string(storage::TypeName(kv_b.type)) + " cannot be split");
  }
  std::vector<float> rows(static_cast<size_t>(kv_b.rows * Rkv));
  for (int64_t r = 0; r < kv_b.rows; ++r) {
    DequantizeRow(kv_b.type, kv_b.row(r), static_cast<int64_t>(Rkv), &rows[r * Rkv]);
  }
  std::vector<float> k_b(H * Rkv * dn), v_b(H * dv * Rkv);
  for (uint64_t h = 0; h < H; ++h) {
    for (uint64_t d = 0; d < dn; ++d) {
      for (uint64_t r = 0; r < Rkv; ++r)
        k_b[(h * Rkv + r) * dn + d] = rows[(h * (dn + dv) + d) * Rkv + r];
    }
    for (uint64_t j = 0; j < dv; ++j) {
      std::copy_n(&rows[(h * (dn + dv) + dn + j) * Rkv], Rkv, &v_b[(h * dv + j) * Rkv]);
    }
  }
  owned_.push_back(std::move(k_b));
  layers_[il].k_b = {storage::GgmlType::kF32, static_cast<int64_t>(dn),
                     static_cast<int64_t>(H * Rkv),
                     reinterpret_cast<const uint8_t*>(owned_.back().data()), dn * sizeof(float)};
  owned_.push_back(std::move(v_b));
  layers_[il].v_b = {storage::GgmlType::kF32, static_cast<int64_t>(Rkv),
                     static_cast<int64_t>(H * dv),
                     reinterpret_cast<const uint8_t*>(owned_.back().data()), Rkv * sizeof(float)};
  return Status::Ok();
}

Deepseek2Session::Deepseek2Session(const Deepseek2Model& model, uint32_t n_ctx,
                                   storage::GgmlType kv_type, Deepseek2Options options)
    : model_(model),
      c_(model.config()),
      options_(options),
      pool_(options.threads),
      cache_(c_.n_layer, n_ctx, c_.kv_lora_rank, c_.qk_rope, kv_type),
      prefetcher_(model.experts(),
                  // Nothing to fetch when every bundle is resident or the page cache rules.
                  !model.experts() || model.experts()->mode() != "tiered"
                      ? prefetch::PrefetchMode::kOff
                      : options.prefetch,
                  options.lookahead, model.moe_layers()) {}

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
  if (batch < 1) batch = 1;
  const int64_t start = n_past_;
  for (size_t first = 0; first < tokens.size(); first += static_cast<size_t>(batch)) {
    const int64_t n = std::min<int64_t>(batch, static_cast<int64_t>(tokens.size() - first));
    const bool last = first + static_cast<size_t>(n) == tokens.size();
    if (Status s = EvalChunk(tokens.data() + first, n, last, logits); !s.ok()) {
      n_past_ = start;
      return s;
    }
  }
  return Status::Ok();
}

Status Deepseek2Session::EvalChunk(const int32_t* tokens, int64_t n, bool want_logits,
                                   std::vector<float>* logits) {
  const int64_t E = c_.n_embd;
  uint64_t t0 = NowNs();
  prefetcher_.BeginToken();
  x_.resize(static_cast<size_t>(n * E));
  const WeightMatrix& embd = model_.token_embd();
  for (int64_t t = 0; t < n; ++t) DequantizeRow(embd.type, embd.row(tokens[t]), E, &x_[t * E]);
  for (uint32_t il = 0; il < c_.n_layer; ++il) {
    const uint64_t t1 = NowNs();
    timings_.head_ns += t1 - t0;
    Attention(il, n);
    t0 = NowNs();
    timings_.attention_ns += t0 - t1;
    STRATA_RETURN_IF_ERROR(FeedForward(il, n));
    const uint64_t t2 = NowNs();
    timings_.feed_forward_ns += t2 - t0;
    t0 = t2;
  }
  n_past_ += n;
  if (!want_logits || !logits) return Status::Ok();
  std::vector<float> last(static_cast<size_t>(E));
  RmsNorm(&x_[(n - 1) * E], model_.output_norm(), E, c_.rms_eps, last.data());
  logits->resize(c_.n_vocab);
  kernels::MatVec(model_.output(), last.data(), logits->data(), pool_, options_.isa, act_);
  timings_.head_ns += NowNs() - t0;
  return Status::Ok();
}

void Deepseek2Session::Attention(uint32_t il, int64_t n) {
  const Deepseek2Layer& L = model_.layer(il);
  const int64_t E = c_.n_embd, H = c_.n_head, dn = c_.qk_nope, dr = c_.qk_rope, dv = c_.v_head;
  const int64_t Rkv = c_.kv_lora_rank, Rq = c_.q_lora_rank, qdim = H * (dn + dr);
  const kernels::Isa isa = options_.isa;
  h_.resize(static_cast<size_t>(n * E));
  for (int64_t t = 0; t < n; ++t) RmsNorm(&x_[t * E], L.attn_norm, E, c_.rms_eps, &h_[t * E]);

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
      RowDots(Rows(L.k_b, h * Rkv, Rkv), q, &q_abs_[th * kq], isa, scratch);
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
  const kernels::DotFn dot = kernels::GetDot(storage::GgmlType::kF32, isa);
  const float kq_scale = model_.kq_scale();
  // Scores take n * H * S floats; token sub-batches keep that under 64 MiB.
  const int64_t sub = std::max<int64_t>(1, (int64_t{16} << 20) / (H * S));
  for (int64_t t0 = 0; t0 < n; t0 += sub) {
    const int64_t tn = std::min(sub, n - t0);
    probs_.resize(static_cast<size_t>(tn * H * S));
    // 3. Scores, split by cache position: each row is loaded once for all heads.
    pool_.ParallelFor(
        S,
        [&](int64_t begin, int64_t end) {
          for (int64_t s = begin; s < end; ++s) {
            const float* row = &rows_f32_[s * kq];
            for (int64_t t = std::max<int64_t>(0, s - n_past_ - t0); t < tn; ++t) {
              for (int64_t h = 0; h < H; ++h) {
                probs_[(t * H + h) * S + s] =
                    dot(kq, row, &q_abs_[((t0 + t) * H + h) * kq]) * kq_scale;
              }
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
    // summed over s in order; each row slice is loaded once for all heads.
    pool_.ParallelFor(
        Rkv,
        [&](int64_t r0, int64_t r1) {
          for (int64_t th = 0; th < tn * H; ++th)
            std::fill_n(&o_lat_[(t0 * H + th) * Rkv + r0], r1 - r0, 0.0f);
          for (int64_t s = 0; s < S; ++s) {
            const float* row = &rows_f32_[s * kq + r0];
            for (int64_t t = std::max<int64_t>(0, s - n_past_ - t0); t < tn; ++t) {
              for (int64_t h = 0; h < H; ++h) {
                const int64_t th = t * H + h;
                kernels::Axpy(probs_[th * S + s], row, &o_lat_[(t0 * H + th) * Rkv + r0], r1 - r0,
                              isa);
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
      RowDots(Rows(L.v_b, h * dv, dv), &o_lat_[th * Rkv], &attn_out_[th * dv], isa, scratch);
    }
  });
  buf_a_.resize(static_cast<size_t>(n * E));
  kernels::MatMul(L.wo, attn_out_.data(), n, buf_a_.data(), pool_, isa, act_);
  for (int64_t i = 0; i < n * E; ++i) x_[i] += buf_a_[i];
}

void Deepseek2Session::SwiGlu(const WeightMatrix& gate, const WeightMatrix& up,
                              const WeightMatrix& down, int64_t gate_row0, int64_t down_row0,
                              int64_t ff, const float* x, int64_t n, float* out) {
  const int64_t E = c_.n_embd;
  std::vector<float> g(static_cast<size_t>(n * ff)), u(static_cast<size_t>(n * ff));
  kernels::MatMul(Rows(gate, gate_row0, ff), x, n, g.data(), pool_, options_.isa, act_);
  kernels::MatMul(Rows(up, gate_row0, ff), x, n, u.data(), pool_, options_.isa, act_);
  for (int64_t i = 0; i < n * ff; ++i) g[i] = Silu(g[i]) * u[i];
  kernels::MatMul(Rows(down, down_row0, E), g.data(), n, out, pool_, options_.isa, act_);
}

Status Deepseek2Session::FeedForward(uint32_t il, int64_t n) {
  const Deepseek2Layer& L = model_.layer(il);
  const int64_t E = c_.n_embd;
  for (int64_t t = 0; t < n; ++t) RmsNorm(&x_[t * E], L.ffn_norm, E, c_.rms_eps, &h_[t * E]);
  if (L.moe) return Moe(il, n);
  buf_a_.resize(static_cast<size_t>(n * E));
  SwiGlu(L.ffn_gate, L.ffn_up, L.ffn_down, 0, 0, c_.n_ff, h_.data(), n, buf_a_.data());
  for (int64_t i = 0; i < n * E; ++i) x_[i] += buf_a_[i];
  return Status::Ok();
}

void Deepseek2Session::ExpertSwiGlu(const Deepseek2Layer& L, const tiers::ExpertView& v,
                                    const float* x, int64_t n, float* out) {
  const int64_t E = c_.n_embd, Fe = c_.n_ff_exp;
  const WeightMatrix gate{L.gate_exps.type, E, Fe, v.gate, L.gate_exps.row_bytes};
  const WeightMatrix up{L.up_exps.type, E, Fe, v.up, L.up_exps.row_bytes};
  const WeightMatrix down{L.down_exps.type, Fe, E, v.down, L.down_exps.row_bytes};
  SwiGlu(gate, up, down, 0, 0, Fe, x, n, out);
}

void Deepseek2Session::HintLookahead(uint32_t il, const float* h) {
  std::vector<float> logits(c_.n_expert);
  for (const uint32_t next : prefetcher_.LayersAfter(il)) {
    const Deepseek2Layer& N = model_.layer(next);
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
  for (int64_t t = 0; t < n; ++t) routes[t] = RouteToken(c_, &logits[t * X], L.router_bias);

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
           shared.data());
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
      x_[t * E + i] += acc + shared[t * E + i];
    }
  }
  return Status::Ok();
}

}  // namespace strata::engine

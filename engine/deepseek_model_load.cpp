#include "engine/deepseek_model.h"

#include <algorithm>
#include <cmath>

#include "engine/kernels/vector_ops.h"
#include "engine/quant/quantize.h"

// DeepseekModel: binding and shape-checking every tensor of a file, and what the
// model derives at load (legacy attn_kv_b split into k_b and v_b). V4's attention and
// hash routing bind in deepseek_model_bind_v4.cpp.
namespace strata::engine {

using kernels::RowSlice;
using kernels::WeightMatrix;

Result<std::unique_ptr<DeepseekModel>> DeepseekModel::Load(std::unique_ptr<ModelFile> file,
                                                             tiers::ExpertCache* experts,
                                                             tiers::EngramRowCache* engram_rows) {
  auto m = std::unique_ptr<DeepseekModel>(new DeepseekModel());
  m->experts_ = experts;
  m->engram_rows_ = engram_rows;
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
  if (c.is_v4()) {
    // docs/MODEL.md §3.3: window-only layers rotate with the plain table; CSA/HCA layers with
    // the YaRN one, unscaled (attention_factor 1). The softmax scale is 1/sqrt(D).
    m->rope_ = std::make_unique<Rope>(
        RopeParams{.n_dims = static_cast<int>(c.qk_rope), .freq_base = c.rope_freq_base});
    const bool v4_yarn = c.rope_scaling_factor > 1.0f && c.rope_orig_context > 0;
    m->rope_compress_ = std::make_unique<Rope>(
        RopeParams{.n_dims = static_cast<int>(c.qk_rope),
                   .freq_base = c.v4.compress_rope_base,
                   .freq_scale = v4_yarn ? 1.0f / c.rope_scaling_factor : 1.0f,
                   .n_ctx_orig = static_cast<int>(c.rope_orig_context),
                   .yarn = v4_yarn,
                   .beta_fast = c.v4.yarn_beta_fast,
                   .beta_slow = c.v4.yarn_beta_slow});
    m->kq_scale_ = 1.0f / std::sqrt(static_cast<float>(c.v4.head_dim));
  }
  m->layers_.resize(c.n_layer);
  for (uint32_t il = 0; il < c.n_layer; ++il) STRATA_RETURN_IF_ERROR(m->BindLayer(il));
  if (c.hc_mult > 1) {
    STRATA_RETURN_IF_ERROR(m->BindSite("output_hc_", c.hc_mult, 1, &m->hc_head_));
  }
  if (c.engram.enabled() && m->engram_chunk_limit() < 1) {
    return Status::ResourceExhausted(
        "--engram-cache holds " + std::to_string(engram_rows->capacity_rows()) +
        " rows; one token needs " + std::to_string(c.engram.n_layers() * c.engram.cols()));
  }
  return m;
}

HcParams DeepseekModel::hc_params() const {
  return {config_.hc_mult, config_.hc_sinkhorn_iters, config_.hc_eps, config_.rms_eps};
}

int64_t DeepseekModel::engram_chunk_limit() const {
  const EngramConfig& eg = config_.engram;
  if (!eg.enabled() || !engram_rows_) return std::numeric_limits<int64_t>::max();
  return static_cast<int64_t>(engram_rows_->capacity_rows() / (eg.n_layers() * eg.cols()));
}

Status DeepseekModel::BindSite(const std::string& prefix, uint64_t rows, uint64_t scales,
                                HcSite* site) {
  const ModelFile& f = *file_;
  const uint64_t HC = config_.hc_mult, E = config_.n_embd;
  STRATA_ASSIGN_OR_RETURN(site->fn, f.Matrix(prefix + "fn.weight", {HC * E, rows}));
  if (!kernels::HasDot(site->fn.type)) {
    return Status::Unsupported(f.path() + ": tensor '" + prefix + "fn.weight' type " +
                               std::string(storage::TypeName(site->fn.type)) + " unsupported");
  }
  STRATA_ASSIGN_OR_RETURN(site->base, f.Vector(prefix + "base.weight", rows));
  STRATA_ASSIGN_OR_RETURN(site->scale, f.Vector(prefix + "scale.weight", scales));
  return Status::Ok();
}

Status DeepseekModel::BindEngram(uint32_t il) {
  const Deepseek2Config& c = config_;
  const EngramConfig& eg = c.engram;
  const ModelFile& f = *file_;
  DeepseekLayer& L = layers_[il];
  const std::string p = "blk." + std::to_string(il) + ".";
  const uint64_t E = c.n_embd, HC = c.hc_mult, De = eg.embd();
  if (eg.module == EngramModule::kV41) {
    STRATA_ASSIGN_OR_RETURN(L.engram_kv, f.Matrix(p + "engram_kv.weight", {De, (HC + 1) * E}));
  } else {
    STRATA_ASSIGN_OR_RETURN(L.engram_k, f.Matrix(p + "engram_k.weight", {De, HC * E}));
    STRATA_ASSIGN_OR_RETURN(L.engram_v, f.Matrix(p + "engram_v.weight", {De, E}));
    STRATA_ASSIGN_OR_RETURN(L.engram_k_bias, f.Vector(p + "engram_k.bias", E * HC));
    STRATA_ASSIGN_OR_RETURN(L.engram_v_bias, f.Vector(p + "engram_v.bias", E));
    STRATA_ASSIGN_OR_RETURN(L.engram_conv_norm, f.Vector(p + "engram_conv_norm.weight", E * HC));
    STRATA_ASSIGN_OR_RETURN(L.engram_conv,
                            f.Vector(p + "engram_conv.weight", eg.conv_kernel * HC * E));
  }
  STRATA_ASSIGN_OR_RETURN(L.engram_q_norm, f.Vector(p + "engram_q_norm.weight", E * HC));
  STRATA_ASSIGN_OR_RETURN(L.engram_k_norm, f.Vector(p + "engram_k_norm.weight", E * HC));
  // The table: its type and row length follow the encoding (docs/GGUF.md §4.3).
  const std::string table = p + "engram_embd.weight";
  const uint64_t rows = eg.rows[static_cast<size_t>(L.engram)];
  const storage::GgmlType want = eg.table_type();
  STRATA_ASSIGN_OR_RETURN(kernels::WeightMatrix t, f.RowTable(table, {eg.table_ne0(), rows}));
  if (t.type != want || t.row_bytes != eg.row_bytes()) {
    return Status::Corruption(f.path() + ": tensor '" + table + "' is " +
                              std::string(storage::TypeName(t.type)) + " but encoding " +
                              std::string(EngramEncodingName(eg.encoding)) + " needs " +
                              std::string(storage::TypeName(want)));
  }
  L.engram_table = t.data;
  if (!L.engram_table && !engram_rows_) {
    return Status::InvalidArgument(f.path() + ": tensor '" + table +
                                   "' was not loaded and no Engram row cache is set");
  }
  return Status::Ok();
}

prefetch::HashRouting DeepseekModel::hash_routing() const {
  prefetch::HashRouting h{.tables = {}, .k = config_.n_expert_used};
  for (const DeepseekLayer& L : layers_) {
    if (L.tid2eid) h.tables.resize(layers_.size(), nullptr);
  }
  for (size_t il = 0; il < h.tables.size(); ++il) h.tables[il] = layers_[il].tid2eid;
  return h;
}

std::vector<uint32_t> DeepseekModel::moe_layers() const {
  std::vector<uint32_t> out;
  for (uint32_t il = 0; il < config_.n_layer; ++il) {
    if (layers_[il].moe) out.push_back(il);
  }
  return out;
}

Status DeepseekModel::BindLayer(uint32_t il) {
  const Deepseek2Config& c = config_;
  const ModelFile& f = *file_;
  DeepseekLayer& L = layers_[il];
  const std::string p = "blk." + std::to_string(il) + ".";
  const uint64_t E = c.n_embd, H = c.n_head, dn = c.qk_nope, dr = c.qk_rope;
  const uint64_t Rq = c.q_lora_rank;
  STRATA_ASSIGN_OR_RETURN(L.attn_norm, f.Vector(p + "attn_norm.weight", E));
  if (c.hc_mult > 1) {
    const uint64_t mix = (2 + uint64_t{c.hc_mult}) * c.hc_mult;
    STRATA_RETURN_IF_ERROR(BindSite(p + "hc_attn_", mix, 3, &L.hc_attn));
    STRATA_RETURN_IF_ERROR(BindSite(p + "hc_ffn_", mix, 3, &L.hc_ffn));
  }
  L.engram = c.engram.enabled() ? c.engram.index_of_layer(il) : -1;
  if (L.engram >= 0) STRATA_RETURN_IF_ERROR(BindEngram(il));
  if (c.is_v4()) {
    STRATA_RETURN_IF_ERROR(BindV4Attention(il));
    if (il < c.v4.hash_layers) STRATA_RETURN_IF_ERROR(BindHashRouting(il));
    L.clamp_exp = c.v4.clamp_exp[il];
    L.clamp_shexp = c.v4.clamp_shexp[il];
  } else if (Rq > 0) {
    STRATA_ASSIGN_OR_RETURN(L.q_a, f.Matrix(p + "attn_q_a.weight", {E, Rq}));
    STRATA_ASSIGN_OR_RETURN(L.q_a_norm, f.Vector(p + "attn_q_a_norm.weight", Rq));
    STRATA_ASSIGN_OR_RETURN(L.q_b, f.Matrix(p + "attn_q_b.weight", {Rq, H * (dn + dr)}));
  } else {
    STRATA_ASSIGN_OR_RETURN(L.q, f.Matrix(p + "attn_q.weight", {E, H * (dn + dr)}));
  }
  if (!c.is_v4()) STRATA_RETURN_IF_ERROR(BindMla(il));
  STRATA_ASSIGN_OR_RETURN(L.ffn_norm, f.Vector(p + "ffn_norm.weight", E));
  L.moe = c.is_moe_layer(il);
  if (!L.moe) {
    STRATA_ASSIGN_OR_RETURN(L.ffn_gate, f.Matrix(p + "ffn_gate.weight", {E, c.n_ff}));
    STRATA_ASSIGN_OR_RETURN(L.ffn_up, f.Matrix(p + "ffn_up.weight", {E, c.n_ff}));
    STRATA_ASSIGN_OR_RETURN(L.ffn_down, f.Matrix(p + "ffn_down.weight", {c.n_ff, E}));
    return Status::Ok();
  }
  return BindMoe(il);
}

Status DeepseekModel::BindMla(uint32_t il) {
  const Deepseek2Config& c = config_;
  const ModelFile& f = *file_;
  DeepseekLayer& L = layers_[il];
  const std::string p = "blk." + std::to_string(il) + ".";
  const uint64_t E = c.n_embd, H = c.n_head, dn = c.qk_nope, dr = c.qk_rope, dv = c.v_head;
  const uint64_t Rkv = c.kv_lora_rank;
  STRATA_ASSIGN_OR_RETURN(L.kv_a_mqa, f.Matrix(p + "attn_kv_a_mqa.weight", {E, Rkv + dr}));
  STRATA_ASSIGN_OR_RETURN(L.kv_a_norm, f.Vector(p + "attn_kv_a_norm.weight", Rkv));
  if (c.legacy_kv_b) {
    STRATA_RETURN_IF_ERROR(SplitLegacyKvB(il));
  } else {
    STRATA_ASSIGN_OR_RETURN(L.k_b, f.Matrix(p + "attn_k_b.weight", {dn, Rkv, H}));
    STRATA_ASSIGN_OR_RETURN(L.v_b, f.Matrix(p + "attn_v_b.weight", {Rkv, dv, H}));
  }
  STRATA_ASSIGN_OR_RETURN(L.wo, f.Matrix(p + "attn_output.weight", {H * dv, E}));
  return Status::Ok();
}

Status DeepseekModel::BindMoe(uint32_t il) {
  const Deepseek2Config& c = config_;
  const ModelFile& f = *file_;
  DeepseekLayer& L = layers_[il];
  const std::string p = "blk." + std::to_string(il) + ".";
  const uint64_t E = c.n_embd;
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

namespace {

// The type legacy k_b copies are stored in: float types as they were; quantized ones
// as Q8_0 (k_b rows are qk_nope long, too short for the K-quants), F16 if not 32-aligned.
storage::GgmlType LegacyKbType(storage::GgmlType original, uint64_t dn) {
  using storage::GgmlType;
  if (original == GgmlType::kF32 || original == GgmlType::kF16) return original;
  if (original == GgmlType::kBF16 && CanQuantize(GgmlType::kBF16)) return original;
  return dn % 32 == 0 ? GgmlType::kQ8_0 : GgmlType::kF16;
}

}  // namespace

uint64_t DeepseekModel::DerivedBytes(const storage::GgufFile& file, const Deepseek2Config& c) {
  if (!c.legacy_kv_b || c.is_v4()) return 0;
  const uint64_t H = c.n_head, dn = c.qk_nope, dv = c.v_head, Rkv = c.kv_lora_rank;
  uint64_t grown = 0, largest = 0;
  for (uint32_t il = 0; il < c.n_layer; ++il) {
    const storage::TensorInfo* t =
        file.FindTensor("blk." + std::to_string(il) + ".attn_kv_b.weight");
    if (!t) continue;
    const uint64_t row = storage::RowBytes(t->type, Rkv).value_or(0);
    const uint64_t original = H * (dn + dv) * row;
    const uint64_t split =
        H * Rkv * storage::RowBytes(LegacyKbType(t->type, dn), dn).value_or(0) + H * dv * row;
    grown += split > original ? split - original : 0;
    largest = std::max(largest, split);
  }
  // Each layer's copies exist beside its original until that is released.
  return grown + largest;
}

Status DeepseekModel::SplitLegacyKvB(uint32_t il) {
  // attn_kv_b [Rkv, H*(dn+dv)]: per head, dn key rows then dv value rows, each Rkv
  // long. k_b wants, per head, Rkv rows of dn (the transpose), stored in LegacyKbType;
  // v_b the value rows as they are, bytes copied. The original is then released, so
  // the layer costs what a file with split tensors costs.
  const Deepseek2Config& c = config_;
  const std::string name = "blk." + std::to_string(il) + ".attn_kv_b.weight";
  const uint64_t H = c.n_head, dn = c.qk_nope, dv = c.v_head, Rkv = c.kv_lora_rank;
  STRATA_ASSIGN_OR_RETURN(WeightMatrix kv_b, file_->Matrix(name, {Rkv, H * (dn + dv)}));
  if (!CanDequantize(kv_b.type)) {
    return Status::Unsupported(file_->path() + ": tensor '" + name + "' type " +
                               std::string(storage::TypeName(kv_b.type)) + " cannot be split");
  }
  const storage::GgmlType kb_type = LegacyKbType(kv_b.type, dn);
  const uint64_t kb_row = *storage::RowBytes(kb_type, dn), vb_row = kv_b.row_bytes;
  std::vector<uint8_t> k_b(H * Rkv * kb_row), v_b(H * dv * vb_row);
  std::vector<float> keys(dn * Rkv), column(dn);  // one head's key rows, dequantized
  for (uint64_t h = 0; h < H; ++h) {
    for (uint64_t d = 0; d < dn; ++d) {
      DequantizeRow(kv_b.type, kv_b.row(static_cast<int64_t>(h * (dn + dv) + d)),
                    static_cast<int64_t>(Rkv), &keys[d * Rkv]);
    }
    for (uint64_t r = 0; r < Rkv; ++r) {
      for (uint64_t d = 0; d < dn; ++d) column[d] = keys[d * Rkv + r];
      QuantizeRow(kb_type, column.data(), static_cast<int64_t>(dn),
                         &k_b[(h * Rkv + r) * kb_row]);
    }
    for (uint64_t j = 0; j < dv; ++j) {
      std::copy_n(kv_b.row(static_cast<int64_t>(h * (dn + dv) + dn + j)), vb_row,
                  &v_b[(h * dv + j) * vb_row]);
    }
  }
  owned_bytes_.push_back(std::move(k_b));
  layers_[il].k_b = {kb_type, static_cast<int64_t>(dn), static_cast<int64_t>(H * Rkv),
                     owned_bytes_.back().data(), kb_row};
  owned_bytes_.push_back(std::move(v_b));
  layers_[il].v_b = {kv_b.type, static_cast<int64_t>(Rkv), static_cast<int64_t>(H * dv),
                     owned_bytes_.back().data(), vb_row};
  file_->Release(name);
  return Status::Ok();
}

}  // namespace strata::engine

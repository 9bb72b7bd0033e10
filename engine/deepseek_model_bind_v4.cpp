// DeepseekModel: binding V4's tensors (docs/GGUF.md §3.2): the hybrid attention's
// (window, compressors, indexer) and the hash-routed layers' tid2eid tables.
#include <algorithm>
#include <cmath>

#include "engine/deepseek_model.h"
#include "engine/quant/quantize.h"

namespace strata::engine {

using kernels::WeightMatrix;

Result<const float*> DeepseekModel::FloatTensor(const std::string& name,
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

Status DeepseekModel::BindCompressor(const std::string& prefix, uint64_t width, uint64_t dim,
                                      uint32_t ratio, CompressorWeights* out) {
  const uint64_t E = config_.n_embd;
  STRATA_ASSIGN_OR_RETURN(out->kv, file_->Matrix(prefix + "kv.weight", {E, width}));
  STRATA_ASSIGN_OR_RETURN(out->gate, file_->Matrix(prefix + "gate.weight", {E, width}));
  STRATA_ASSIGN_OR_RETURN(out->ape, FloatTensor(prefix + "ape.weight", {width, ratio}));
  STRATA_ASSIGN_OR_RETURN(out->norm, file_->Vector(prefix + "norm.weight", dim));
  return Status::Ok();
}

Status DeepseekModel::BindV4Attention(uint32_t il) {
  const Deepseek2Config& c = config_;
  const V4Config& v = c.v4;
  const ModelFile& f = *file_;
  DeepseekLayer& L = layers_[il];
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

Status DeepseekModel::BindHashRouting(uint32_t il) {
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

}  // namespace strata::engine

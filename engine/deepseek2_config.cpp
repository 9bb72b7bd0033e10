#include "engine/deepseek2_config.h"

#include <algorithm>

#include "engine/graphs/registry.h"
#include "storage/gguf_writer.h"

namespace strata::engine {
namespace {

std::string Key(const std::string& arch, const char* suffix) { return arch + "." + suffix; }

Status ReadU32(const storage::GgufFile& f, const std::string& arch, const char* suffix,
               uint32_t* out) {
  STRATA_ASSIGN_OR_RETURN(uint64_t v, f.GetUnsigned(Key(arch, suffix)));
  if (v > UINT32_MAX) {
    return Status::Corruption(f.path() + ": metadata key '" + Key(arch, suffix) +
                              "' = " + std::to_string(v) + " is out of range");
  }
  *out = static_cast<uint32_t>(v);
  return Status::Ok();
}

Status ReadU32Or(const storage::GgufFile& f, const std::string& arch, const char* suffix,
                 uint32_t fallback, uint32_t* out) {
  if (!f.Find(Key(arch, suffix))) {
    *out = fallback;
    return Status::Ok();
  }
  return ReadU32(f, arch, suffix, out);
}

Status ReadF32Or(const storage::GgufFile& f, const std::string& arch, const char* suffix,
                 float fallback, float* out) {
  if (!f.Find(Key(arch, suffix))) {
    *out = fallback;
    return Status::Ok();
  }
  STRATA_ASSIGN_OR_RETURN(double v, f.GetFloat(Key(arch, suffix)));
  *out = static_cast<float>(v);
  return Status::Ok();
}

// The MLA head sizes: new files carry *_mla keys, old files carry them directly.
Status ReadMlaHeads(const storage::GgufFile& f, const std::string& arch, Deepseek2Config* c) {
  uint32_t key_length = 0, value_length = 0;
  STRATA_RETURN_IF_ERROR(ReadU32(f, arch, "attention.key_length", &key_length));
  STRATA_RETURN_IF_ERROR(ReadU32(f, arch, "attention.value_length", &value_length));
  if (f.Find(Key(arch, "attention.key_length_mla"))) {
    uint32_t k_mla = 0;
    STRATA_RETURN_IF_ERROR(ReadU32(f, arch, "attention.key_length_mla", &k_mla));
    STRATA_RETURN_IF_ERROR(ReadU32(f, arch, "attention.value_length_mla", &c->v_head));
    if (k_mla <= c->qk_rope) return Status::Corruption(f.path() + ": key_length_mla <= rope dims");
    c->qk_nope = k_mla - c->qk_rope;
    if (key_length != c->kv_lora_rank + c->qk_rope) {
      return Status::Corruption(f.path() + ": attention.key_length " + std::to_string(key_length) +
                                " != kv_lora_rank + rope (" +
                                std::to_string(c->kv_lora_rank + c->qk_rope) + ")");
    }
  } else {
    if (key_length <= c->qk_rope) return Status::Corruption(f.path() + ": key_length <= rope dims");
    c->qk_nope = key_length - c->qk_rope;
    c->v_head = value_length;
  }
  return Status::Ok();
}

}  // namespace

Status Deepseek2Config::Validate() const {
  auto bad = [](const std::string& what) {
    return Status::InvalidArgument("deepseek2 config: " + what);
  };
  if (n_layer == 0) return bad("block_count must be > 0");
  if (n_embd == 0 || n_head == 0 || n_vocab == 0)
    return bad("embedding, heads and vocab must be > 0");
  if ((!is_v4() && kv_lora_rank == 0) || qk_nope == 0 || qk_rope == 0 || v_head == 0) {
    return bad("kv_lora_rank, qk_nope, qk_rope and v_head must be > 0");
  }
  if (qk_rope % 2 != 0) return bad("rope dimension count " + std::to_string(qk_rope) + " is odd");
  if (n_leading_dense > n_layer) return bad("leading_dense_block_count exceeds block_count");
  if (n_leading_dense > 0 && n_ff == 0) return bad("dense layers need feed_forward_length > 0");
  if (n_leading_dense < n_layer) {
    if (n_expert == 0 || n_ff_exp == 0)
      return bad("MoE layers need expert_count and expert_feed_forward_length");
    if (n_expert_used == 0 || n_expert_used > n_expert) {
      return bad("expert_used_count " + std::to_string(n_expert_used) + " must be in 1.." +
                 std::to_string(n_expert));
    }
    if (n_group == 0 || n_expert % n_group != 0) {
      return bad("expert_count " + std::to_string(n_expert) +
                 " is not divisible by expert_group_count " + std::to_string(n_group));
    }
    if (n_group_used == 0 || n_group_used > n_group)
      return bad("expert_group_used_count out of range");
    if (n_expert_used > n_group_used * (n_expert / n_group)) {
      return bad("expert_used_count exceeds the experts in the kept groups");
    }
  }
  if (gating != GatingFunc::kSoftmax && gating != GatingFunc::kSigmoid &&
      gating != GatingFunc::kSqrtSoftplus) {
    return bad("expert_gating_func " + std::to_string(static_cast<uint32_t>(gating)) +
               " is not 1 (softmax), 2 (sigmoid) or 4 (sqrt-softplus)");
  }
  if (is_v4()) {
    if (gating != GatingFunc::kSqrtSoftplus) return bad("deepseek4 needs expert_gating_func 4");
    if (n_leading_dense != 0 || n_expert == 0) return bad("deepseek4 has only MoE layers");
    if (q_lora_rank == 0) return bad("deepseek4 needs attention.q_lora_rank");
    if (hc_mult < 2) return bad("deepseek4 needs hyper_connection.count >= 2");
    STRATA_RETURN_IF_ERROR(v4.Validate(n_layer, n_head, qk_rope));
  }
  if (hc_mult == 0 || hc_mult > kMaxHyperStreams) {
    return bad("hyper_connection.count " + std::to_string(hc_mult) + " must be in 1.." +
               std::to_string(kMaxHyperStreams));
  }
  if (hc_mult > 1 && (hc_sinkhorn_iters == 0 || hc_sinkhorn_iters > 1000)) {
    return bad("hyper_connection.sinkhorn_iterations must be in 1..1000");
  }
  if (!rope_scaling_type.empty() && rope_scaling_type != "yarn" && rope_scaling_type != "none") {
    return bad("rope.scaling.type '" + rope_scaling_type + "' is not supported (yarn or none)");
  }
  return Status::Ok();
}

Result<Deepseek2Config> Deepseek2Config::FromGguf(const storage::GgufFile& f) {
  STRATA_ASSIGN_OR_RETURN(std::string arch, f.GetString("general.architecture"));
  const std::vector<std::string_view> known = RegisteredArchitectures();
  if (std::find(known.begin(), known.end(), arch) == known.end()) {
    std::string names;
    for (size_t i = 0; i < known.size(); ++i) {
      names += (i == 0 ? "" : i + 1 == known.size() ? " or " : ", ") + std::string(known[i]);
    }
    return Status::Unsupported(f.path() + ": architecture '" + arch + "' is not " + names);
  }
  Deepseek2Config c;
  c.arch = arch;
  STRATA_RETURN_IF_ERROR(ReadU32(f, arch, "block_count", &c.n_layer));
  // Converters that keep MTP count its layers in block_count (docs/GGUF.md §3.4); those
  // layers (blk.N.nextn.*) are not part of the main forward pass.
  STRATA_RETURN_IF_ERROR(ReadU32Or(f, arch, "nextn_predict_layers", 0, &c.n_nextn));
  if (c.n_nextn > 0) {
    if (c.n_nextn >= c.n_layer) {
      return Status::Corruption(f.path() + ": nextn_predict_layers " + std::to_string(c.n_nextn) +
                                " leaves no main layers of block_count " +
                                std::to_string(c.n_layer));
    }
    c.n_layer -= c.n_nextn;
    // docs/GGUF.md §3.4: deepseek4 files may declare MTP layers they do not carry.
    if (arch == kArchDeepseek4 &&
        !f.FindTensor("blk." + std::to_string(c.n_layer) + ".nextn.eh_proj.weight")) {
      c.n_layer += c.n_nextn;
      c.n_nextn = 0;
    }
  }
  STRATA_RETURN_IF_ERROR(ReadU32(f, arch, "embedding_length", &c.n_embd));
  STRATA_RETURN_IF_ERROR(ReadU32Or(f, arch, "feed_forward_length", 0, &c.n_ff));
  STRATA_RETURN_IF_ERROR(ReadU32(f, arch, "attention.head_count", &c.n_head));
  STRATA_RETURN_IF_ERROR(ReadU32Or(f, arch, "attention.head_count_kv", 1, &c.n_head_kv));
  STRATA_RETURN_IF_ERROR(ReadU32Or(f, arch, "attention.q_lora_rank", 0, &c.q_lora_rank));
  if (arch != kArchDeepseek4) {
    STRATA_RETURN_IF_ERROR(ReadU32(f, arch, "attention.kv_lora_rank", &c.kv_lora_rank));
  }
  STRATA_RETURN_IF_ERROR(ReadU32(f, arch, "rope.dimension_count", &c.qk_rope));
  STRATA_RETURN_IF_ERROR(ReadU32Or(f, arch, "expert_count", 0, &c.n_expert));
  STRATA_RETURN_IF_ERROR(ReadU32Or(f, arch, "expert_shared_count", 0, &c.n_expert_shared));
  STRATA_RETURN_IF_ERROR(ReadU32Or(f, arch, "expert_used_count", 0, &c.n_expert_used));
  STRATA_RETURN_IF_ERROR(ReadU32Or(f, arch, "expert_feed_forward_length", 0, &c.n_ff_exp));
  STRATA_RETURN_IF_ERROR(ReadU32Or(f, arch, "leading_dense_block_count", 0, &c.n_leading_dense));
  STRATA_RETURN_IF_ERROR(ReadU32Or(f, arch, "expert_group_count", 1, &c.n_group));
  STRATA_RETURN_IF_ERROR(ReadU32Or(f, arch, "expert_group_used_count", 1, &c.n_group_used));
  if (c.n_group == 0) c.n_group = 1;  // some converters write 0 for "no groups"
  if (c.n_group_used == 0) c.n_group_used = c.n_group;
  STRATA_RETURN_IF_ERROR(ReadF32Or(f, arch, "expert_weights_scale", 1.0f, &c.expert_weights_scale));
  c.expert_weights_norm = f.GetBoolOr(Key(arch, "expert_weights_norm"), false);
  uint32_t gating = 1;
  STRATA_RETURN_IF_ERROR(ReadU32Or(f, arch, "expert_gating_func", 1, &gating));
  c.gating = static_cast<GatingFunc>(gating);
  STRATA_RETURN_IF_ERROR(ReadU32Or(f, arch, "context_length", 4096, &c.context_length));
  STRATA_RETURN_IF_ERROR(ReadF32Or(f, arch, "rope.freq_base", 10000.0f, &c.rope_freq_base));
  STRATA_RETURN_IF_ERROR(ReadF32Or(f, arch, "attention.layer_norm_rms_epsilon", 1e-6f, &c.rms_eps));
  c.rope_scaling_type = f.GetStringOr(Key(arch, "rope.scaling.type"), "");
  STRATA_RETURN_IF_ERROR(ReadF32Or(f, arch, "rope.scaling.factor", 1.0f, &c.rope_scaling_factor));
  STRATA_RETURN_IF_ERROR(
      ReadU32Or(f, arch, "rope.scaling.original_context_length", 0, &c.rope_orig_context));
  STRATA_RETURN_IF_ERROR(
      ReadF32Or(f, arch, "rope.scaling.yarn_log_multiplier", 0.0f, &c.yarn_log_multiplier));

  if (arch == kArchDeepseek4) {
    // V4's single K = V head: nope then rope values (docs/GGUF.md §3.1). Upstream files
    // size the per-layer arrays for the MTP layers too; V4Config reads the main ones.
    STRATA_ASSIGN_OR_RETURN(c.v4, V4Config::FromGguf(f, arch, c.n_layer));
    if (c.v4.head_dim <= c.qk_rope) {
      return Status::Corruption(f.path() + ": attention.key_length <= rope dims");
    }
    c.qk_nope = c.v4.head_dim - c.qk_rope;
    c.v_head = c.v4.head_dim;
  } else {
    STRATA_RETURN_IF_ERROR(ReadMlaHeads(f, arch, &c));
  }
  c.legacy_kv_b = f.FindTensor("blk.0.attn_kv_b.weight") != nullptr &&
                  f.FindTensor("blk.0.attn_k_b.weight") == nullptr;

  // The vocabulary: the explicit key, else the token list, else the embedding rows.
  if (f.Find(Key(arch, "vocab_size"))) {
    STRATA_RETURN_IF_ERROR(ReadU32(f, arch, "vocab_size", &c.n_vocab));
  } else if (const auto* tokens = f.Find("tokenizer.ggml.tokens")) {
    c.n_vocab = static_cast<uint32_t>(tokens->items().size());
  } else if (const auto* embd = f.FindTensor("token_embd.weight")) {
    c.n_vocab = static_cast<uint32_t>(embd->ne[1]);
  }
  STRATA_RETURN_IF_ERROR(ReadU32Or(f, arch, "hyper_connection.count", 1, &c.hc_mult));
  STRATA_RETURN_IF_ERROR(
      ReadU32Or(f, arch, "hyper_connection.sinkhorn_iterations", 20, &c.hc_sinkhorn_iters));
  STRATA_RETURN_IF_ERROR(ReadF32Or(f, arch, "hyper_connection.epsilon", 1e-6f, &c.hc_eps));
  Status s = c.Validate();
  if (!s.ok()) return Status::Corruption(f.path() + ": " + s.message());
  STRATA_ASSIGN_OR_RETURN(c.engram, EngramConfig::FromGguf(f, arch, c.n_vocab, c.n_layer));
  if (arch == kArchDeepseek2Engram && (!c.engram.enabled() || c.hc_mult < 2)) {
    return Status::Corruption(f.path() + ": a " + kArchDeepseek2Engram +
                              " model needs engram.* keys and hyper_connection.count >= 2");
  }
  return c;
}

uint64_t Deepseek2Config::AttentionStateBytes(uint64_t n_ctx, uint32_t kv_value_bytes) const {
  if (!is_v4()) return uint64_t{n_layer} * n_ctx * (kv_lora_rank + qk_rope) * kv_value_bytes;
  uint64_t values = 0;
  for (uint32_t il = 0; il < n_layer; ++il) {
    const uint64_t ratio = v4.ratio(il), D = v4.head_dim;
    values += uint64_t{v4.sliding_window} * D;
    if (ratio == 0) continue;
    const uint64_t windows = ratio == kCsaRatio ? 2 : 1;  // CSA keeps the previous one too
    values += windows * ratio * 2 * v4.compressor_width(il) + (n_ctx + ratio - 1) / ratio * D;
    if (ratio == kCsaRatio) {
      values += windows * ratio * 2 * 2 * v4.index_dim + (n_ctx + ratio - 1) / ratio * v4.index_dim;
    }
  }
  return values * sizeof(float);
}

void Deepseek2Config::WriteMetadata(storage::GgufWriter& w) const {
  using storage::GgufValue;
  auto u32 = [&](const char* k, uint32_t v) { w.AddMetadata(Key(arch, k), GgufValue::U32(v)); };
  auto f32 = [&](const char* k, float v) { w.AddMetadata(Key(arch, k), GgufValue::F32(v)); };
  u32("block_count", n_layer + n_nextn);
  if (n_nextn > 0) u32("nextn_predict_layers", n_nextn);
  u32("context_length", context_length);
  u32("embedding_length", n_embd);
  if (!is_v4()) u32("feed_forward_length", n_ff);
  u32("attention.head_count", n_head);
  u32("attention.head_count_kv", 1);
  f32("rope.freq_base", rope_freq_base);
  f32("attention.layer_norm_rms_epsilon", rms_eps);
  u32("expert_used_count", n_expert_used);
  if (!is_v4()) u32("leading_dense_block_count", n_leading_dense);
  u32("vocab_size", n_vocab);
  if (q_lora_rank > 0) u32("attention.q_lora_rank", q_lora_rank);
  if (is_v4()) {
    v4.WriteMetadata(w, arch);
  } else {
    u32("attention.kv_lora_rank", kv_lora_rank);
    u32("attention.key_length", kv_lora_rank + qk_rope);
    u32("attention.value_length", kv_lora_rank);
    u32("attention.key_length_mla", qk_nope + qk_rope);
    u32("attention.value_length_mla", v_head);
  }
  u32("expert_feed_forward_length", n_ff_exp);
  u32("expert_count", n_expert);
  u32("expert_shared_count", n_expert_shared);
  f32("expert_weights_scale", expert_weights_scale);
  if (expert_weights_norm) w.AddMetadata(Key(arch, "expert_weights_norm"), GgufValue::Bool(true));
  u32("expert_gating_func", static_cast<uint32_t>(gating));
  if (!is_v4()) {  // docs/GGUF.md §3.1: deepseek4 has no expert groups
    u32("expert_group_count", n_group);
    u32("expert_group_used_count", n_group_used);
  }
  u32("rope.dimension_count", qk_rope);
  if (is_v4() && rope_scaling_factor > 1.0f) {  // YaRN of the compress table (§3.3)
    f32("rope.scaling.factor", rope_scaling_factor);
    u32("rope.scaling.original_context_length", rope_orig_context);
  } else if (!rope_scaling_type.empty()) {
    w.AddMetadata(Key(arch, "rope.scaling.type"), GgufValue::String(rope_scaling_type));
    f32("rope.scaling.factor", rope_scaling_factor);
    u32("rope.scaling.original_context_length", rope_orig_context);
    f32("rope.scaling.yarn_log_multiplier", yarn_log_multiplier);
  }
  if (hc_mult > 1) {
    u32("hyper_connection.count", hc_mult);
    u32("hyper_connection.sinkhorn_iterations", hc_sinkhorn_iters);
    f32("hyper_connection.epsilon", hc_eps);
  }
  if (engram.enabled()) engram.WriteMetadata(w, arch);
}

}  // namespace strata::engine

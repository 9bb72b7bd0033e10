#include "engine/deepseek4_config.h"

namespace strata::engine {
namespace {

using storage::GgufType;
using storage::GgufValue;

Status Missing(const storage::GgufFile& f, const std::string& key) {
  return Status::Corruption(f.path() + ": metadata key '" + key + "' is missing");
}

Status ReadU32(const storage::GgufFile& f, const std::string& key, uint32_t* out) {
  STRATA_ASSIGN_OR_RETURN(uint64_t v, f.GetUnsigned(key));
  if (v > UINT32_MAX) {
    return Status::Corruption(f.path() + ": metadata key '" + key + "' = " + std::to_string(v) +
                              " is out of range");
  }
  *out = static_cast<uint32_t>(v);
  return Status::Ok();
}

// An integer array (u32 upstream, i32 in some ds4 files) of at least `n` items.
Result<std::vector<uint32_t>> ReadRatios(const storage::GgufFile& f, const std::string& key,
                                         uint32_t n) {
  const GgufValue* v = f.Find(key);
  if (!v) return Missing(f, key);
  if (v->type() != GgufType::kArray || !storage::IsIntegerType(v->elem_type()) ||
      v->items().size() < n) {
    return Status::Corruption(f.path() + ": metadata key '" + key +
                              "' is not an integer array of at least " + std::to_string(n) +
                              " items");
  }
  std::vector<uint32_t> out;
  for (uint32_t i = 0; i < n; ++i) {
    const auto u = v->items()[i].AsUnsigned();
    if (!u || (*u != 0 && *u != kCsaRatio && *u != kHcaRatio)) {
      return Status::Unsupported(f.path() + ": metadata key '" + key + "' item " +
                                 std::to_string(i) + " is not 0, 4 or 128");
    }
    out.push_back(static_cast<uint32_t>(*u));
  }
  return out;
}

// A per-layer float: an array of at least `n` items, or one scalar for every layer.
Result<std::vector<float>> ReadPerLayer(const storage::GgufFile& f, const std::string& key,
                                        uint32_t n) {
  const GgufValue* v = f.Find(key);
  if (!v) return Missing(f, key);
  if (v->type() != GgufType::kArray) {
    const auto x = v->AsFloat();
    if (!x) return Status::Corruption(f.path() + ": metadata key '" + key + "' is not a float");
    return std::vector<float>(n, static_cast<float>(*x));
  }
  if (v->items().size() < n) {
    return Status::Corruption(f.path() + ": metadata key '" + key + "' has " +
                              std::to_string(v->items().size()) + " items for " +
                              std::to_string(n) + " layers");
  }
  std::vector<float> out;
  for (uint32_t i = 0; i < n; ++i) {
    const auto x = v->items()[i].AsFloat();
    if (!x || !(*x >= 0)) {
      return Status::Corruption(f.path() + ": metadata key '" + key + "' item " +
                                std::to_string(i) + " is not a non-negative float");
    }
    out.push_back(static_cast<float>(*x));
  }
  return out;
}

}  // namespace

Result<V4Config> V4Config::FromGguf(const storage::GgufFile& f, const std::string& arch,
                                    uint32_t n_layer) {
  V4Config c;
  auto key = [&](const char* suffix) { return arch + "." + suffix; };
  STRATA_RETURN_IF_ERROR(ReadU32(f, key("attention.key_length"), &c.head_dim));
  STRATA_RETURN_IF_ERROR(ReadU32(f, key("attention.sliding_window"), &c.sliding_window));
  STRATA_ASSIGN_OR_RETURN(c.compress_ratios,
                          ReadRatios(f, key("attention.compress_ratios"), n_layer));
  bool any_csa = false, any_compressed = false;
  for (uint32_t r : c.compress_ratios) {
    any_csa = any_csa || r == kCsaRatio;
    any_compressed = any_compressed || r != 0;
  }
  if (any_compressed) {
    STRATA_ASSIGN_OR_RETURN(double base, f.GetFloat(key("attention.compress_rope_freq_base")));
    c.compress_rope_base = static_cast<float>(base);
  }
  if (f.Find(key("rope.scaling.yarn_beta_fast"))) {
    STRATA_ASSIGN_OR_RETURN(double v, f.GetFloat(key("rope.scaling.yarn_beta_fast")));
    c.yarn_beta_fast = static_cast<float>(v);
  }
  if (f.Find(key("rope.scaling.yarn_beta_slow"))) {
    STRATA_ASSIGN_OR_RETURN(double v, f.GetFloat(key("rope.scaling.yarn_beta_slow")));
    c.yarn_beta_slow = static_cast<float>(v);
  }
  STRATA_RETURN_IF_ERROR(ReadU32(f, key("attention.output_group_count"), &c.o_groups));
  STRATA_RETURN_IF_ERROR(ReadU32(f, key("attention.output_lora_rank"), &c.o_lora_rank));
  if (any_csa) {
    STRATA_RETURN_IF_ERROR(ReadU32(f, key("attention.indexer.head_count"), &c.index_heads));
    STRATA_RETURN_IF_ERROR(ReadU32(f, key("attention.indexer.key_length"), &c.index_dim));
    STRATA_RETURN_IF_ERROR(ReadU32(f, key("attention.indexer.top_k"), &c.index_topk));
  }
  c.hash_layers = static_cast<uint32_t>(f.GetUnsignedOr(key("hash_layer_count"), 0));
  STRATA_ASSIGN_OR_RETURN(c.clamp_exp, ReadPerLayer(f, key("swiglu_clamp_exp"), n_layer));
  if (f.Find(key("swiglu_clamp_shexp"))) {
    STRATA_ASSIGN_OR_RETURN(c.clamp_shexp, ReadPerLayer(f, key("swiglu_clamp_shexp"), n_layer));
  } else {
    c.clamp_shexp = c.clamp_exp;  // docs/GGUF.md §3.1: defaults to the routed clamp
  }
  return c;
}

Status V4Config::Validate(uint32_t n_layer, uint32_t n_head, uint32_t rope_dims) const {
  auto bad = [](const std::string& what) {
    return Status::InvalidArgument("deepseek4 config: " + what);
  };
  if (head_dim == 0 || rope_dims == 0 || rope_dims >= head_dim || rope_dims % 2 != 0) {
    return bad("rope.dimension_count " + std::to_string(rope_dims) +
               " must be even and below attention.key_length " + std::to_string(head_dim));
  }
  // Bounds far above any real model's, so a hostile file cannot make the per-layer
  // state allocate gigabytes.
  if (sliding_window == 0 || sliding_window > 65536) {
    return bad("attention.sliding_window " + std::to_string(sliding_window) +
               " must be in 1..65536");
  }
  if (head_dim > 8192 || index_dim > 8192) {
    return bad("attention.key_length and indexer.key_length must be at most 8192");
  }
  if (compress_ratios.size() != n_layer || clamp_exp.size() != n_layer ||
      clamp_shexp.size() != n_layer) {
    return bad("per-layer arrays must cover the " + std::to_string(n_layer) + " layers");
  }
  if (o_groups == 0 || n_head % o_groups != 0 || o_lora_rank == 0) {
    return bad("attention.output_group_count " + std::to_string(o_groups) +
               " must divide the " + std::to_string(n_head) + " heads, with output_lora_rank > 0");
  }
  for (uint32_t r : compress_ratios) {
    if (r != kCsaRatio) continue;
    if (index_heads == 0 || index_dim <= rope_dims || index_topk == 0) {
      return bad("CSA layers need attention.indexer.head_count, key_length > rope dims, top_k");
    }
    break;
  }
  if (hash_layers > n_layer) return bad("hash_layer_count exceeds block_count");
  return Status::Ok();
}

void V4Config::WriteMetadata(storage::GgufWriter& w, const std::string& arch) const {
  auto u32 = [&](const char* k, uint32_t v) { w.AddMetadata(arch + "." + k, GgufValue::U32(v)); };
  auto f32 = [&](const char* k, float v) { w.AddMetadata(arch + "." + k, GgufValue::F32(v)); };
  u32("attention.key_length", head_dim);
  u32("attention.value_length", head_dim);
  u32("attention.sliding_window", sliding_window);
  w.AddMetadata(arch + ".attention.compress_ratios", GgufValue::U32Array(compress_ratios));
  f32("attention.compress_rope_freq_base", compress_rope_base);
  f32("rope.scaling.yarn_beta_fast", yarn_beta_fast);
  f32("rope.scaling.yarn_beta_slow", yarn_beta_slow);
  u32("attention.output_group_count", o_groups);
  u32("attention.output_lora_rank", o_lora_rank);
  u32("attention.indexer.head_count", index_heads);
  u32("attention.indexer.key_length", index_dim);
  u32("attention.indexer.top_k", index_topk);
  u32("hash_layer_count", hash_layers);
  w.AddMetadata(arch + ".swiglu_clamp_exp", GgufValue::F32Array(clamp_exp));
  w.AddMetadata(arch + ".swiglu_clamp_shexp", GgufValue::F32Array(clamp_shexp));
}

}  // namespace strata::engine

#include "engine/deepseek2_tensors.h"

#include <functional>

namespace strata::engine {
namespace {

// V4 attention (docs/GGUF.md §3.2): q LoRA, one K = V head, sinks, grouped output, and the
// compressor (CSA/HCA layers) and lightning indexer (CSA layers).
void AddV4Attention(const Deepseek2Config& c, uint32_t il,
                    const std::function<void(const std::string&, std::vector<uint64_t>,
                                             TensorRole)>& add) {
  const V4Config& v = c.v4;
  const uint64_t E = c.n_embd, H = c.n_head, D = v.head_dim, Rq = c.q_lora_rank;
  const uint64_t G = v.o_groups, Ro = v.o_lora_rank;
  add("attn_sinks.weight", {H}, TensorRole::kSinks);
  add("attn_q_a.weight", {E, Rq}, TensorRole::kMatrix);
  add("attn_q_a_norm.weight", {Rq}, TensorRole::kNorm);
  add("attn_q_b.weight", {Rq, H * D}, TensorRole::kMatrix);
  add("attn_kv.weight", {E, D}, TensorRole::kMatrix);
  add("attn_kv_a_norm.weight", {D}, TensorRole::kNorm);
  add("attn_output_a.weight", {H * D / G, G * Ro}, TensorRole::kMatrix);
  add("attn_output_b.weight", {G * Ro, E}, TensorRole::kMatrix);
  const uint64_t ratio = v.ratio(il);
  if (ratio == 0) return;
  const uint64_t width = v.compressor_width(il);
  add("attn_compressor_kv.weight", {E, width}, TensorRole::kSideMatrix);
  add("attn_compressor_gate.weight", {E, width}, TensorRole::kSideMatrix);
  add("attn_compressor_ape.weight", {width, ratio}, TensorRole::kApe);
  add("attn_compressor_norm.weight", {D}, TensorRole::kNorm);
  if (ratio != kCsaRatio) return;
  const uint64_t Ih = v.index_heads, Id = v.index_dim;
  add("indexer.attn_q_b.weight", {Rq, Ih * Id}, TensorRole::kSideMatrix);
  add("indexer.proj.weight", {E, Ih}, TensorRole::kSideMatrix);
  add("indexer_compressor_kv.weight", {E, 2 * Id}, TensorRole::kSideMatrix);
  add("indexer_compressor_gate.weight", {E, 2 * Id}, TensorRole::kSideMatrix);
  add("indexer_compressor_ape.weight", {2 * Id, kCsaRatio}, TensorRole::kApe);
  add("indexer_compressor_norm.weight", {Id}, TensorRole::kNorm);
}

}  // namespace

std::vector<TensorSpec> Deepseek2TensorPlan(const Deepseek2Config& c, bool with_router_bias) {
  const uint64_t E = c.n_embd, V = c.n_vocab, H = c.n_head;
  const uint64_t dn = c.qk_nope, dr = c.qk_rope, dv = c.v_head;
  const uint64_t Rq = c.q_lora_rank, Rkv = c.kv_lora_rank;
  const uint64_t X = c.n_expert, Fe = c.n_ff_exp, S = c.n_expert_shared;
  constexpr uint32_t kGlobal = UINT32_MAX;

  const uint64_t HC = c.hc_mult, MIX = (2 + HC) * HC;
  const EngramConfig& eg = c.engram;

  std::vector<TensorSpec> plan;
  plan.push_back({"token_embd.weight", {E, V}, TensorRole::kEmbedding, kGlobal});
  for (uint32_t il = 0; il < c.n_layer; ++il) {
    const std::string p = "blk." + std::to_string(il) + ".";
    auto add = [&](const std::string& suffix, std::vector<uint64_t> ne, TensorRole role) {
      plan.push_back({p + suffix, std::move(ne), role, il});
    };
    if (eg.enabled() && eg.index_of_layer(il) >= 0) {
      const uint64_t De = eg.embd();
      if (eg.module == EngramModule::kV41) {
        add("engram_kv.weight", {De, (HC + 1) * E}, TensorRole::kMatrix);
      } else {
        add("engram_k.weight", {De, HC * E}, TensorRole::kMatrix);
        add("engram_k.bias", {E, HC}, TensorRole::kBias);
        add("engram_v.weight", {De, E}, TensorRole::kMatrix);
        add("engram_v.bias", {E}, TensorRole::kBias);
        add("engram_conv_norm.weight", {E, HC}, TensorRole::kNorm);
        add("engram_conv.weight", {eg.conv_kernel, HC * E}, TensorRole::kConv);
      }
      add("engram_q_norm.weight", {E, HC}, TensorRole::kNorm);
      add("engram_k_norm.weight", {E, HC}, TensorRole::kNorm);
    }
    if (HC > 1) {
      for (const char* site : {"attn", "ffn"}) {
        add(std::string("hc_") + site + "_fn.weight", {HC * E, MIX}, TensorRole::kHyperFn);
        add(std::string("hc_") + site + "_base.weight", {MIX}, TensorRole::kHyperParam);
        add(std::string("hc_") + site + "_scale.weight", {3}, TensorRole::kHyperParam);
      }
    }
    add("attn_norm.weight", {E}, TensorRole::kNorm);
    if (c.is_v4()) {
      AddV4Attention(c, il, add);
    } else if (Rq > 0) {
      add("attn_q_a.weight", {E, Rq}, TensorRole::kMatrix);
      add("attn_q_a_norm.weight", {Rq}, TensorRole::kNorm);
      add("attn_q_b.weight", {Rq, H * (dn + dr)}, TensorRole::kMatrix);
    } else {
      add("attn_q.weight", {E, H * (dn + dr)}, TensorRole::kMatrix);
    }
    if (!c.is_v4()) {
      add("attn_kv_a_mqa.weight", {E, Rkv + dr}, TensorRole::kMatrix);
      add("attn_kv_a_norm.weight", {Rkv}, TensorRole::kNorm);
      add("attn_k_b.weight", {dn, Rkv, H}, TensorRole::kMatrix);
      add("attn_v_b.weight", {Rkv, dv, H}, TensorRole::kMatrix);
      add("attn_output.weight", {H * dv, E}, TensorRole::kMatrix);
    }
    add("ffn_norm.weight", {E}, TensorRole::kNorm);
    if (!c.is_moe_layer(il)) {
      add("ffn_gate.weight", {E, c.n_ff}, TensorRole::kMatrix);
      add("ffn_up.weight", {E, c.n_ff}, TensorRole::kMatrix);
      add("ffn_down.weight", {c.n_ff, E}, TensorRole::kMatrix);
      continue;
    }
    add("ffn_gate_inp.weight", {E, X}, TensorRole::kRouter);
    // V4's first layers route by a token -> experts table and carry no bias (§3.2).
    const bool hashed = c.is_v4() && il < c.v4.hash_layers;
    if (hashed) add("ffn_gate_tid2eid.weight", {c.n_expert_used, V}, TensorRole::kHashTable);
    if (with_router_bias && !hashed) add("exp_probs_b.bias", {X}, TensorRole::kRouterBias);
    add("ffn_gate_exps.weight", {E, Fe, X}, TensorRole::kExpertStack);
    add("ffn_up_exps.weight", {E, Fe, X}, TensorRole::kExpertStack);
    add("ffn_down_exps.weight", {Fe, E, X}, TensorRole::kExpertStack);
    if (S > 0) {
      add("ffn_gate_shexp.weight", {E, Fe * S}, TensorRole::kMatrix);
      add("ffn_up_shexp.weight", {E, Fe * S}, TensorRole::kMatrix);
      add("ffn_down_shexp.weight", {Fe * S, E}, TensorRole::kMatrix);
    }
  }
  if (HC > 1) {
    plan.push_back({"output_hc_fn.weight", {HC * E, HC}, TensorRole::kHyperFn, kGlobal});
    plan.push_back({"output_hc_base.weight", {HC}, TensorRole::kHyperParam, kGlobal});
    plan.push_back({"output_hc_scale.weight", {1}, TensorRole::kHyperParam, kGlobal});
  }
  plan.push_back({"output_norm.weight", {E}, TensorRole::kNorm, kGlobal});
  plan.push_back({"output.weight", {E, V}, TensorRole::kOutput, kGlobal});
  // The tables go last, as ds4 places them: the pinned weights stay one contiguous run.
  for (uint32_t i = 0; i < eg.n_layers(); ++i) {
    plan.push_back({"blk." + std::to_string(eg.layer_ids[i]) + ".engram_embd.weight",
                    {eg.table_ne0(), eg.rows[i]}, TensorRole::kEngramTable, eg.layer_ids[i]});
  }
  return plan;
}

}  // namespace strata::engine

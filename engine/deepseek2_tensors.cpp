#include "engine/deepseek2_tensors.h"

namespace strata::engine {

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
    if (Rq > 0) {
      add("attn_q_a.weight", {E, Rq}, TensorRole::kMatrix);
      add("attn_q_a_norm.weight", {Rq}, TensorRole::kNorm);
      add("attn_q_b.weight", {Rq, H * (dn + dr)}, TensorRole::kMatrix);
    } else {
      add("attn_q.weight", {E, H * (dn + dr)}, TensorRole::kMatrix);
    }
    add("attn_kv_a_mqa.weight", {E, Rkv + dr}, TensorRole::kMatrix);
    add("attn_kv_a_norm.weight", {Rkv}, TensorRole::kNorm);
    add("attn_k_b.weight", {dn, Rkv, H}, TensorRole::kMatrix);
    add("attn_v_b.weight", {Rkv, dv, H}, TensorRole::kMatrix);
    add("attn_output.weight", {H * dv, E}, TensorRole::kMatrix);
    add("ffn_norm.weight", {E}, TensorRole::kNorm);
    if (!c.is_moe_layer(il)) {
      add("ffn_gate.weight", {E, c.n_ff}, TensorRole::kMatrix);
      add("ffn_up.weight", {E, c.n_ff}, TensorRole::kMatrix);
      add("ffn_down.weight", {c.n_ff, E}, TensorRole::kMatrix);
      continue;
    }
    add("ffn_gate_inp.weight", {E, X}, TensorRole::kRouter);
    if (with_router_bias) add("exp_probs_b.bias", {X}, TensorRole::kRouterBias);
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

// The weights of a DeepSeek-family model (deepseek2: V2/V2-Lite/V3/R1 and the Kimi-K2
// class; deepseek2-engram; deepseek4: V4), bound and shape-checked against the file's
// metadata: per layer the attention's (MLA, or V4's hybrid attention), the FFN's
// (dense, or router + shared + routed experts), mHC's sites and Engram's module. Old
// attn_kv_b files are split into k_b and v_b at load. Routed experts come through the
// expert cache when the model is tiered, Engram rows through the row cache. Immutable
// after Load: any number of sessions (engine/session.h) share one. Shapes in GGML ne
// order (docs/GGUF.md §2-4); math in docs/MODEL.md.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "engine/blocks/mhc.h"
#include "engine/blocks/v4_state.h"
#include "engine/deepseek2_config.h"
#include "engine/kernels/matmul.h"
#include "engine/model_file.h"
#include "engine/rope.h"
#include "prefetch/prefetcher.h"
#include "tiers/engram_row_cache.h"
#include "tiers/expert_cache.h"
#include "util/status.h"

namespace strata::engine {

struct DeepseekLayer {
  // Attention. Shapes in GGML ne order.
  const float* attn_norm = nullptr;   // [E]
  kernels::WeightMatrix q_a, q_b, q;  // [E, Rq], [Rq, H*(dn+dr)] or [E, H*(dn+dr)]
  const float* q_a_norm = nullptr;    // [Rq]
  kernels::WeightMatrix kv_a_mqa;     // [E, Rkv+dr]
  const float* kv_a_norm = nullptr;   // [Rkv]
  kernels::WeightMatrix k_b;          // [dn, Rkv, H]: head h = rows h*Rkv..
  kernels::WeightMatrix v_b;          // [Rkv, dv, H]: head h = rows h*dv..
  kernels::WeightMatrix wo;           // [H*dv, E]
  const float* ffn_norm = nullptr;    // [E]
  // Dense FFN (leading layers).
  kernels::WeightMatrix ffn_gate, ffn_up, ffn_down;
  // MoE.
  kernels::WeightMatrix router;              // [E, X]
  const float* router_bias = nullptr;        // [X] or null
  kernels::WeightMatrix gate_exps, up_exps;  // [E, Fe, X]: expert e = rows e*Fe..
  kernels::WeightMatrix down_exps;           // [Fe, E, X]: expert e = rows e*E..
  kernels::WeightMatrix gate_shexp, up_shexp, down_shexp;
  bool moe = false;
  // V4 (deepseek4): the hybrid attention, hash routing and SwiGLU clamps (0: none).
  V4AttentionWeights v4;
  const int32_t* tid2eid = nullptr;  // [V][top-k] expert ids (hash layers)
  float clamp_exp = 0, clamp_shexp = 0;
  // mHC sites (hc_mult > 1).
  HcSite hc_attn, hc_ffn;
  // Engram (layers in engram.layer_ids), applied to the streams before attention.
  int engram = -1;                           // index among the Engram layers
  kernels::WeightMatrix engram_kv;           // v41: [De, (HC+1)*E]
  kernels::WeightMatrix engram_k, engram_v;  // demo: [De, HC*E], [De, E]
  const float* engram_k_bias = nullptr;      // demo: [E, HC]
  const float* engram_v_bias = nullptr;      // demo: [E]
  const float* engram_conv_norm = nullptr;   // demo: [E, HC]
  const float* engram_conv = nullptr;        // demo: [K, HC*E]
  const float* engram_q_norm = nullptr;      // [E, HC]
  const float* engram_k_norm = nullptr;      // [E, HC]
  const uint8_t* engram_table = nullptr;     // rows in RAM; null: the row cache has them
};


class DeepseekModel {
 public:
  // Binds and shape-checks every tensor against the metadata; errors name the tensor.
  // Routed experts come from `experts` when given (it must outlive the model), else
  // from `file`, which must then hold every tensor. Engram tables the file did not
  // load come through `engram_rows` (which must outlive the model).
  static Result<std::unique_ptr<DeepseekModel>> Load(
      std::unique_ptr<ModelFile> file, tiers::ExpertCache* experts = nullptr,
      tiers::EngramRowCache* engram_rows = nullptr);

  // RAM the model allocates at load beyond the file's tensors, at its peak (legacy
  // attn_kv_b split into k_b and v_b); the budget counts it with the pinned weights.
  static uint64_t DerivedBytes(const storage::GgufFile& file, const Deepseek2Config& config);

  const Deepseek2Config& config() const { return config_; }
  const ModelFile& file() const { return *file_; }
  const DeepseekLayer& layer(uint32_t il) const { return layers_[il]; }
  const kernels::WeightMatrix& token_embd() const { return token_embd_; }
  const kernels::WeightMatrix& output() const { return output_; }
  const float* output_norm() const { return output_norm_; }
  const Rope& rope() const { return *rope_; }
  // The rope of `layer`: V4's compressed layers use the YaRN table (docs/MODEL.md §3.3).
  const Rope& rope(uint32_t layer) const {
    return rope_compress_ && layers_[layer].v4.ratio != 0 ? *rope_compress_ : *rope_;
  }
  float kq_scale() const { return kq_scale_; }
  tiers::ExpertCache* experts() const { return experts_; }
  tiers::EngramRowCache* engram_rows() const { return engram_rows_; }
  const HcSite& hc_head() const { return hc_head_; }
  HcParams hc_params() const;
  // Tokens one prefill chunk may hold so that its Engram rows fit the row cache.
  int64_t engram_chunk_limit() const;
  std::vector<uint32_t> moe_layers() const;
  // V4's hash-routed layers' tid2eid tables, for the prefetcher's exact hints.
  prefetch::HashRouting hash_routing() const;

 private:
  DeepseekModel() = default;
  Status BindLayer(uint32_t il);
  Status BindEngram(uint32_t il);
  Status BindSite(const std::string& prefix, uint64_t rows, uint64_t scales, HcSite* site);
  Status SplitLegacyKvB(uint32_t il);
  Status BindMla(uint32_t il);
  Status BindMoe(uint32_t il);
  Status BindV4Attention(uint32_t il);
  Status BindCompressor(const std::string& prefix, uint64_t width, uint64_t dim, uint32_t ratio,
                        CompressorWeights* out);
  Status BindHashRouting(uint32_t il);
  // A small tensor as f32: F32 in place, F16/BF16 converted into owned_.
  Result<const float*> FloatTensor(const std::string& name, std::vector<uint64_t> ne);

  std::unique_ptr<ModelFile> file_;
  tiers::ExpertCache* experts_ = nullptr;
  tiers::EngramRowCache* engram_rows_ = nullptr;
  HcSite hc_head_;
  Deepseek2Config config_;
  std::vector<DeepseekLayer> layers_;
  kernels::WeightMatrix token_embd_, output_;
  const float* output_norm_ = nullptr;
  std::unique_ptr<Rope> rope_;
  std::unique_ptr<Rope> rope_compress_;  // V4 only
  float kq_scale_ = 1.0f;
  std::vector<std::vector<float>> owned_;          // small tensors converted to f32
  std::vector<std::vector<uint8_t>> owned_bytes_;  // k_b/v_b split from legacy attn_kv_b
};

}  // namespace strata::engine

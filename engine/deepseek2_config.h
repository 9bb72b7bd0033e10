// Hyperparameters of a `deepseek2` model (DeepSeek-V2/V2-Lite/V3/R1, Kimi-K2 class),
// read from and written to the GGUF keys llama.cpp uses (docs/GGUF.md §2.1).
// Value type; thread-compatible.
#pragma once

#include <cstdint>
#include <string>

#include "engine/deepseek4_config.h"
#include "engine/engram_config.h"
#include "engine/blocks/mhc.h"
#include "storage/gguf.h"
#include "storage/gguf_writer.h"
#include "util/status.h"

namespace strata::engine {

// `deepseek2` as llama.cpp writes it; `deepseek2-engram` is strata's synthetic
// Engram-27B-like host: the same backbone plus mHC and Engram (docs/FORMAT.md);
// `deepseek4` (V4-Flash/Pro) shares the backbone fields and adds V4Config.
inline constexpr char kArchDeepseek2[] = "deepseek2";
inline constexpr char kArchDeepseek2Engram[] = "deepseek2-engram";

enum class GatingFunc : uint32_t { kSoftmax = 1, kSigmoid = 2, kSqrtSoftplus = 4 };

struct Deepseek2Config {
  std::string arch = kArchDeepseek2;  // also the metadata key prefix
  uint32_t n_layer = 0;      // main layers (block_count minus MTP layers)
  uint32_t n_nextn = 0;      // MTP layers after the main ones; not used by the forward pass
  uint32_t n_embd = 0;       // E
  uint32_t n_vocab = 0;      // V
  uint32_t n_ff = 0;         // dense FFN width (leading dense layers)
  uint32_t n_head = 0;       // H
  uint32_t n_head_kv = 1;    // 1 in MLA-as-MQA files, H in old attn_kv_b files
  uint32_t q_lora_rank = 0;  // 0: direct attn_q (V2-Lite)
  uint32_t kv_lora_rank = 0;
  uint32_t qk_nope = 0;   // dn
  uint32_t qk_rope = 0;   // dr
  uint32_t v_head = 0;    // dv
  uint32_t n_expert = 0;  // routed experts per MoE layer
  uint32_t n_expert_shared = 0;
  uint32_t n_expert_used = 0;  // top-k
  uint32_t n_ff_exp = 0;       // routed/shared expert width
  uint32_t n_leading_dense = 0;
  uint32_t n_group = 1;       // expert groups (V3: 8)
  uint32_t n_group_used = 1;  // groups kept (V3: 4)
  float expert_weights_scale = 1.0f;
  bool expert_weights_norm = false;
  GatingFunc gating = GatingFunc::kSoftmax;
  uint32_t context_length = 4096;
  float rope_freq_base = 10000.0f;
  float rms_eps = 1e-6f;
  std::string rope_scaling_type;  // "" (none) or "yarn"
  float rope_scaling_factor = 1.0f;
  uint32_t rope_orig_context = 0;
  float yarn_log_multiplier = 0.0f;
  bool legacy_kv_b = false;  // old files: attn_kv_b instead of attn_k_b/attn_v_b
  // mHC (docs/MODEL.md §7): 1 = a plain residual stream.
  uint32_t hc_mult = 1;
  uint32_t hc_sinkhorn_iters = 20;
  float hc_eps = 1e-6f;
  EngramConfig engram;  // enabled() only in Engram models
  V4Config v4;          // deepseek4 only (is_v4())

  bool is_v4() const { return arch == kArchDeepseek4; }

  bool is_moe_layer(uint32_t layer) const { return layer >= n_leading_dense && n_expert > 0; }
  uint32_t n_moe_layers() const {
    return n_layer > n_leading_dense ? n_layer - n_leading_dense : 0;
  }

  // Bytes of one sequence's attention state at `n_ctx` tokens: the MLA cache (latent +
  // rope key per layer and token, `kv_value_bytes` each), or V4's windows, compressor
  // buffers and compressed entries (f32; docs/MODEL.md §8.10).
  uint64_t AttentionStateBytes(uint64_t n_ctx, uint32_t kv_value_bytes) const;

  // Reads every key, accepting any integer width, and checks the values are coherent
  // (e.g. expert_used_count <= expert_count, key_length == kv_lora + rope).
  static Result<Deepseek2Config> FromGguf(const storage::GgufFile& file);

  // The same keys, as gguf-py writes them (u32 integers, f32 floats).
  void WriteMetadata(storage::GgufWriter& writer) const;

  // Checks internal coherence; the error names the offending field.
  Status Validate() const;
};

}  // namespace strata::engine

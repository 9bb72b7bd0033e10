// The DeepSeek-V4 parts of a model's hyperparameters (`deepseek4`, docs/GGUF.md §3.1):
// the hybrid attention (sliding window, CSA and HCA compressors, lightning indexer,
// grouped output), the second rope table, hash routing and the SwiGLU clamps. The
// backbone fields (heads, q LoRA, experts, mHC) stay in Deepseek2Config. Value type.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "storage/gguf.h"
#include "storage/gguf_writer.h"
#include "util/status.h"

namespace strata::engine {

inline constexpr char kArchDeepseek4[] = "deepseek4";

// compress_ratios values: 0 = sliding window only, 4 = CSA (with the indexer),
// 128 = HCA (docs/MODEL.md §8.1).
inline constexpr uint32_t kCsaRatio = 4;
inline constexpr uint32_t kHcaRatio = 128;

struct V4Config {
  uint32_t head_dim = 0;        // D: one shared K = V head (nope + rope)
  uint32_t sliding_window = 0;  // keys of the window, the query's own included
  std::vector<uint32_t> compress_ratios;  // per main layer
  float compress_rope_base = 160000.0f;   // the YaRN table of CSA/HCA layers
  float yarn_beta_fast = 32.0f;
  float yarn_beta_slow = 1.0f;
  uint32_t o_groups = 0;     // G: heads are projected out in G groups
  uint32_t o_lora_rank = 0;  // Ro: each group's width after attn_output_a
  uint32_t index_heads = 0;  // lightning indexer (CSA layers)
  uint32_t index_dim = 0;
  uint32_t index_topk = 0;        // compressed CSA entries each query attends
  uint32_t hash_layers = 0;       // the first layers route by tid2eid
  std::vector<float> clamp_exp;   // per layer SwiGLU limit, routed experts (0: none)
  std::vector<float> clamp_shexp; // per layer, shared expert

  uint32_t ratio(uint32_t layer) const { return compress_ratios[layer]; }
  // The width of a compressor's kv/gate projection: overlapping CSA windows need two.
  uint32_t compressor_width(uint32_t layer) const {
    return (ratio(layer) == kCsaRatio ? 2 : 1) * head_dim;
  }

  // Reads `deepseek4.*` for `n_layer` main layers (arrays may be longer: MTP layers).
  static Result<V4Config> FromGguf(const storage::GgufFile& file, const std::string& arch,
                                   uint32_t n_layer);
  void WriteMetadata(storage::GgufWriter& writer, const std::string& arch) const;
  // Coherence with the backbone: heads divisible by groups, rope within the head.
  Status Validate(uint32_t n_layer, uint32_t n_head, uint32_t rope_dims) const;
};

}  // namespace strata::engine

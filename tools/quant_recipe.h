// make-model's --recipe: the per-tensor weight types of files people publish, so tests
// and benches run the mixes users download rather than one type everywhere:
//   q4_k_m    llama-quantize's Q4_K_M: Q4_K, with ffn_down (dense, shared and routed)
//             in Q6_K on the layers llama.cpp's use_more_bits() picks, the output head Q6_K
//   ds4-q2    ds4's V4-Flash "q2": routed gate/up IQ2_XXS, down Q2_K, every other matrix
//             Q8_0
//   ud-iq1_s  in the style of Unsloth's dynamic 1.58-bit V3/R1: routed gate/up IQ1_S
//             (IQ1_M on every fourth MoE layer), routed down IQ2_XXS, the first and last
//             MoE layers' experts all IQ2_XXS; attention, dense FFN and embedding Q4_K,
//             shared experts and the output head Q6_K
// docs/QUANT_IQ.md says where each mix comes from. Rows a block does not divide fall
// back as StorageTypeFor() says. Pure functions; thread-safe.
#pragma once

#include <string>
#include <vector>

#include "engine/deepseek2_config.h"
#include "engine/deepseek2_tensors.h"
#include "storage/ggml_types.h"

namespace strata::tools {

std::vector<std::string> RecipeNames();
bool IsRecipe(const std::string& name);
// The type `recipe` gives `spec` (before the row-size fallback). REQUIRES: IsRecipe.
storage::GgmlType RecipeType(const std::string& recipe, const engine::TensorSpec& spec,
                             const engine::Deepseek2Config& config);
// general.file_type (llama_ftype) the recipe's files carry.
uint32_t RecipeFileType(const std::string& recipe);

}  // namespace strata::tools

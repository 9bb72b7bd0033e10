#include "tools/quant_recipe.h"

#include <algorithm>

namespace strata::tools {
namespace {

using engine::TensorRole;
using storage::GgmlType;

bool Contains(const std::string& s, const char* part) { return s.find(part) != std::string::npos; }

// llama-quantize's use_more_bits (src/llama-quant.cpp): the first and last eighth of the
// layers and every third layer between them.
bool UseMoreBits(int layer, int n_layer) {
  return layer < n_layer / 8 || layer >= 7 * n_layer / 8 || (layer - n_layer / 8) % 3 == 2;
}

GgmlType Q4KM(const engine::TensorSpec& spec, const engine::Deepseek2Config& c) {
  if (spec.role == TensorRole::kOutput) return GgmlType::kQ6_K;
  if (Contains(spec.name, "ffn_down") && spec.layer != UINT32_MAX &&
      UseMoreBits(static_cast<int>(spec.layer), static_cast<int>(c.n_layer))) {
    return GgmlType::kQ6_K;
  }
  return GgmlType::kQ4_K;
}

GgmlType Ds4Q2(const engine::TensorSpec& spec, const engine::Deepseek2Config&) {
  if (spec.role == TensorRole::kExpertStack) {
    return Contains(spec.name, "ffn_down") ? GgmlType::kQ2_K : GgmlType::kIQ2_XXS;
  }
  return GgmlType::kQ8_0;
}

GgmlType UdIq1S(const engine::TensorSpec& spec, const engine::Deepseek2Config& c) {
  if (spec.role == TensorRole::kOutput) return GgmlType::kQ6_K;
  if (spec.role == TensorRole::kExpertStack) {
    const uint32_t first_moe = c.n_leading_dense, last = c.n_layer - 1;
    if (spec.layer == first_moe || spec.layer == last || Contains(spec.name, "ffn_down")) {
      return GgmlType::kIQ2_XXS;
    }
    return (spec.layer - first_moe) % 4 == 3 ? GgmlType::kIQ1_M : GgmlType::kIQ1_S;
  }
  if (Contains(spec.name, "shexp")) return GgmlType::kQ6_K;
  return GgmlType::kQ4_K;
}

struct Recipe {
  const char* name;
  GgmlType (*pick)(const engine::TensorSpec&, const engine::Deepseek2Config&);
  uint32_t file_type;  // llama_ftype
};
constexpr Recipe kRecipes[] = {
    {"q4_k_m", Q4KM, 15},     // LLAMA_FTYPE_MOSTLY_Q4_K_M
    {"ds4-q2", Ds4Q2, 10},    // LLAMA_FTYPE_MOSTLY_Q2_K
    {"ud-iq1_s", UdIq1S, 24}, // LLAMA_FTYPE_MOSTLY_IQ1_S
};

const Recipe* Find(const std::string& name) {
  for (const Recipe& r : kRecipes) {
    if (name == r.name) return &r;
  }
  return nullptr;
}

}  // namespace

std::vector<std::string> RecipeNames() {
  std::vector<std::string> out;
  for (const Recipe& r : kRecipes) out.emplace_back(r.name);
  return out;
}

bool IsRecipe(const std::string& name) { return Find(name) != nullptr; }

GgmlType RecipeType(const std::string& recipe, const engine::TensorSpec& spec,
                    const engine::Deepseek2Config& config) {
  return Find(recipe)->pick(spec, config);
}

uint32_t RecipeFileType(const std::string& recipe) { return Find(recipe)->file_type; }

}  // namespace strata::tools

// Residency classes: which tier each tensor of a model belongs in by default, and the
// footprint totals `inspect` and (later) the residency plan are built from.
//   pinned dense   attention, norms, routers, shared experts, dense FFN, output head
//   routed expert  3-D expert stacks (gate/up/down_exps): cached in RAM <- NVMe
//   embedding      token_embd: one row per token is touched
//   engram         Engram hash tables: a few rows per token, on NVMe
// Pure functions over the tensor catalog; thread-safe.
#pragma once

#include <cstdint>
#include <string_view>

#include "storage/gguf.h"

namespace strata::tiers {

enum class TensorClass { kPinnedDense, kRoutedExpert, kEmbedding, kEngram };

std::string_view TensorClassName(TensorClass c);
TensorClass ClassifyTensor(std::string_view name);
// "blk.12.ffn_up_exps.weight" -> 12; -1 when the name has no block index.
long BlockIndex(std::string_view name);

struct ModelFootprint {
  uint64_t pinned_dense_bytes = 0;
  uint64_t routed_expert_bytes = 0;
  uint64_t embedding_bytes = 0;
  uint64_t engram_bytes = 0;
  uint64_t total_bytes = 0;

  uint32_t moe_layers = 0;           // layers that carry routed expert stacks
  uint64_t experts_per_layer = 0;    // ne[2] of the expert stacks (max over layers)
  uint64_t expert_bundle_bytes = 0;  // gate+up+down of one expert of one layer (max)
  uint64_t embedding_row_bytes = 0;

  // Bytes one decode step must touch: every pinned dense byte, one embedding row,
  // `experts_per_token` bundles in each MoE layer, and the Engram rows of one token.
  uint64_t active_bytes_per_token = 0;
};

// `experts_per_token` is the router's top-k; `engram_rows_per_token` how many table
// rows each Engram layer gathers per token (0 for models without Engram).
ModelFootprint ComputeFootprint(const storage::GgufFile& file, uint64_t experts_per_token,
                                uint64_t engram_rows_per_token = 0);

}  // namespace strata::tiers

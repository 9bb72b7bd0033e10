#include "tiers/tensor_class.h"

#include <algorithm>
#include <map>
#include <string>

namespace strata::tiers {
namespace {

bool EndsWith(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

}  // namespace

long BlockIndex(std::string_view name) {
  if (name.substr(0, 4) != "blk.") return -1;
  long idx = 0;
  size_t i = 4;
  if (i >= name.size() || name[i] < '0' || name[i] > '9') return -1;
  while (i < name.size() && name[i] >= '0' && name[i] <= '9') idx = idx * 10 + (name[i++] - '0');
  return idx;
}

std::string_view TensorClassName(TensorClass c) {
  switch (c) {
    case TensorClass::kPinnedDense:
      return "pinned dense";
    case TensorClass::kRoutedExpert:
      return "routed experts";
    case TensorClass::kEmbedding:
      return "embedding";
    case TensorClass::kEngram:
      return "engram";
  }
  return "?";
}

TensorClass ClassifyTensor(std::string_view name) {
  if (name == "token_embd.weight") return TensorClass::kEmbedding;
  if (EndsWith(name, "_exps.weight")) return TensorClass::kRoutedExpert;
  if (EndsWith(name, ".engram_embd.weight")) return TensorClass::kEngram;
  return TensorClass::kPinnedDense;
}

ModelFootprint ComputeFootprint(const storage::GgufFile& file, uint64_t experts_per_token,
                                uint64_t engram_rows_per_token) {
  ModelFootprint fp;
  std::map<long, uint64_t> bundle_bytes_by_layer;
  uint64_t engram_active = 0;
  for (const storage::TensorInfo& t : file.tensors()) {
    if (storage::IsPackBlobName(t.name)) continue;  // counted as the stacks it holds
    fp.total_bytes += t.bytes;
    switch (ClassifyTensor(t.name)) {
      case TensorClass::kPinnedDense:
        fp.pinned_dense_bytes += t.bytes;
        break;
      case TensorClass::kRoutedExpert:
        fp.routed_expert_bytes += t.bytes;
        if (t.is_expert_stack()) {
          bundle_bytes_by_layer[BlockIndex(t.name)] += t.expert_bytes();
          fp.experts_per_layer = std::max(fp.experts_per_layer, t.ne[2]);
        }
        break;
      case TensorClass::kEmbedding:
        fp.embedding_bytes += t.bytes;
        fp.embedding_row_bytes = t.row_bytes();
        break;
      case TensorClass::kEngram:
        fp.engram_bytes += t.bytes;
        engram_active += engram_rows_per_token * t.row_bytes();
        break;
    }
  }
  fp.moe_layers = static_cast<uint32_t>(bundle_bytes_by_layer.size());
  uint64_t routed_active = 0;
  for (const auto& [layer, bytes] : bundle_bytes_by_layer) {
    fp.expert_bundle_bytes = std::max(fp.expert_bundle_bytes, bytes);
    routed_active += bytes * experts_per_token;
  }
  fp.active_bytes_per_token =
      fp.pinned_dense_bytes + fp.embedding_row_bytes + routed_active + engram_active;
  return fp;
}

}  // namespace strata::tiers

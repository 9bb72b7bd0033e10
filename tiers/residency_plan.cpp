#include "tiers/residency_plan.h"

#include <fnmatch.h>

#include <algorithm>

#include <map>

#include "storage/async_reader.h"
#include "tiers/tensor_class.h"
#include "util/size_parse.h"

namespace strata::tiers {
namespace {

constexpr uint64_t kAlign = storage::kDirectIoAlignment;

uint64_t AlignUp(uint64_t v) { return (v + kAlign - 1) / kAlign * kAlign; }

// 0 gate, 1 up, 2 down; -1 for anything else.
int StackRole(std::string_view name) {
  if (name.ends_with(".ffn_gate_exps.weight")) return 0;
  if (name.ends_with(".ffn_up_exps.weight")) return 1;
  if (name.ends_with(".ffn_down_exps.weight")) return 2;
  return -1;
}

bool MatchesAny(const std::vector<std::string>& patterns, const std::string& name) {
  for (const std::string& p : patterns) {
    if (fnmatch(p.c_str(), name.c_str(), 0) == 0) return true;
  }
  return false;
}

}  // namespace

AlignedRead AlignForDirectRead(storage::ByteRange range) {
  const uint64_t start = range.offset / kAlign * kAlign;
  return {start, AlignUp(range.offset + range.bytes) - start, range.offset - start};
}

Result<ResidencyPlan> PlanResidency(const storage::GgufFile& file, const PlanInputs& in) {
  ResidencyPlan plan;
  plan.budget = in.ram_budget;
  plan.experts_per_token = std::max<uint32_t>(1, in.experts_per_token);
  std::map<uint32_t, MoeLayer> layers;
  for (const storage::TensorInfo& t : file.tensors()) {
    if (storage::IsPackBlobName(t.name)) continue;  // read through its layer's index
    if (ClassifyTensor(t.name) == TensorClass::kEngram && !MatchesAny(in.pin_patterns, t.name)) {
      plan.engram_tables.push_back(&t);
      plan.engram_table_bytes += t.bytes;
      continue;
    }
    const int role = StackRole(t.name);
    if (ClassifyTensor(t.name) != TensorClass::kRoutedExpert || role < 0 || !t.is_expert_stack() ||
        BlockIndex(t.name) < 0) {
      plan.pinned_tensors.push_back(&t);
      plan.pinned_dense_bytes += t.bytes;
      continue;
    }
    MoeLayer& L = layers[static_cast<uint32_t>(BlockIndex(t.name))];
    L.layer = static_cast<uint32_t>(BlockIndex(t.name));
    if (L.segments[role].stack) {
      return Status::Corruption(file.path() + ": two '" + t.name + "' tensors");
    }
    if (L.n_expert != 0 && L.n_expert != t.ne[2]) {
      return Status::Corruption(
          file.path() + ": tensor '" + t.name + "' has " + std::to_string(t.ne[2]) +
          " experts but its layer's other stacks have " + std::to_string(L.n_expert));
    }
    L.n_expert = static_cast<uint32_t>(t.ne[2]);
    L.segments[role].stack = &t;
    L.pinned = L.pinned || MatchesAny(in.pin_patterns, t.name);
  }
  for (auto& [il, L] : layers) {
    L.packed = file.pack() ? file.pack()->FindLayer(il) : nullptr;
    uint64_t slot_offset = 0;
    for (int role = 0; role < 3; ++role) {
      BundleSegment& s = L.segments[role];
      if (!s.stack) {
        return Status::Corruption(file.path() + ": layer " + std::to_string(il) + " lacks its '" +
                                  (role == 0   ? "ffn_gate_exps"
                                   : role == 1 ? "ffn_up_exps"
                                               : "ffn_down_exps") +
                                  "' stack");
      }
      if (L.packed) {
        // The bundle is one aligned read; its parts follow each other.
        s.slot_offset = slot_offset;
        s.slot_bytes = s.stack->expert_bytes();
      } else {
        // Any expert's range, aligned out to 4 KiB on both sides, fits in this room.
        s.slot_offset = slot_offset;
        s.slot_bytes = AlignUp(s.stack->expert_bytes()) + kAlign;
      }
      slot_offset += s.slot_bytes;
      L.bundle_bytes += s.stack->expert_bytes();
    }
    if (L.packed) {
      if (!L.packed->layout.raw_bytes() ||
          L.packed->layout.bytes[0] != L.segments[0].stack->expert_bytes()) {
        return Status::Corruption(file.path() + ": layer " + std::to_string(il) +
                                  ": pack index disagrees with its stacks");
      }
      slot_offset = AlignUp(slot_offset);
      L.stage_offset = slot_offset;
      if (L.packed->max_compressed_stored) slot_offset += AlignUp(L.packed->max_compressed_stored);
    }
    L.slot_bytes = slot_offset;
    plan.slot_bytes = std::max(plan.slot_bytes, slot_offset);
    plan.total_bundles += L.n_expert;
    plan.routed_expert_bytes += L.bundle_bytes * L.n_expert;
    if (L.pinned) plan.pinned_bundles += L.n_expert;
    plan.moe_index_of_layer.resize(il + 1, -1);
    plan.moe_index_of_layer[il] = static_cast<int32_t>(plan.moe_layers.size());
    plan.moe_layers.push_back(L);
  }
  // Slot classes: one per distinct slot size, largest first.
  for (const MoeLayer& L : plan.moe_layers) {
    bool known = false;
    for (const SlotClass& c : plan.slot_classes) known = known || c.slot_bytes == L.slot_bytes;
    if (!known) plan.slot_classes.push_back({L.slot_bytes});
  }
  std::sort(plan.slot_classes.begin(), plan.slot_classes.end(),
            [](const SlotClass& a, const SlotClass& b) { return a.slot_bytes > b.slot_bytes; });
  uint64_t cached_layers = 0, working_set_bytes = 0, pinned_slot_bytes = 0, all_slot_bytes = 0,
           one_slot_per_layer = 0;
  for (MoeLayer& L : plan.moe_layers) {
    while (plan.slot_classes[L.slot_class].slot_bytes != L.slot_bytes) ++L.slot_class;
    SlotClass& c = plan.slot_classes[L.slot_class];
    ++c.layers;
    all_slot_bytes += L.n_expert * L.slot_bytes;
    if (L.pinned) {
      c.pinned_bundles += L.n_expert;
      pinned_slot_bytes += L.n_expert * L.slot_bytes;
    } else {
      ++c.cached_layers;
      ++cached_layers;
      c.cached_bundles += L.n_expert;
      working_set_bytes += uint64_t{plan.experts_per_token} * L.slot_bytes;
      one_slot_per_layer += L.slot_bytes;
    }
  }
  const uint64_t working_set = uint64_t{plan.experts_per_token} * cached_layers;
  if (!plan.engram_tables.empty()) {
    plan.engram_cache_bytes = std::min(in.engram_cache_bytes, plan.engram_table_bytes);
  }
  plan.session_bytes = in.session_bytes;
  plan.derived_bytes = in.derived_bytes;
  const uint64_t engine_bytes = in.session_bytes + in.derived_bytes;
  const uint64_t pinned_total =
      plan.pinned_dense_bytes + pinned_slot_bytes + plan.engram_cache_bytes + engine_bytes;
  plan.min_budget = pinned_total + (plan.cached_bundles() ? working_set_bytes : 0);
  const uint64_t everything =
      plan.pinned_dense_bytes + all_slot_bytes + plan.engram_table_bytes + engine_bytes;
  if (in.ram_budget == 0 || (in.ram_budget >= everything && in.expert_cache_bytes == 0)) {
    plan.all_resident = true;
    plan.pinned_bundles = plan.total_bundles;
    for (SlotClass& c : plan.slot_classes) {
      c.pinned_bundles += c.cached_bundles;
      c.cached_bundles = 0;
    }
    for (const storage::TensorInfo* t : plan.engram_tables) plan.pinned_tensors.push_back(t);
    plan.pinned_dense_bytes += plan.engram_table_bytes;
    plan.engram_tables.clear();
    plan.engram_table_bytes = plan.engram_cache_bytes = 0;
    return plan;
  }
  if (in.ram_budget < plan.min_budget) {
    return Status::ResourceExhausted(
        "--ram-budget " + FormatBytes(in.ram_budget) + " is below the floor: pinned weights need " +
        FormatBytes(pinned_total - in.session_bytes) +
        (plan.engram_cache_bytes ? " (with the Engram row cache " +
                                       FormatBytes(plan.engram_cache_bytes) + ")"
                                 : std::string()) +
        (in.session_bytes ? ", the KV cache and scratch " + FormatBytes(in.session_bytes) + ","
                          : std::string()) +
        " and one token's routed experts " +
        FormatBytes(working_set_bytes) + " (" + std::to_string(working_set) +
        " bundles); the smallest budget that works is " + FormatBytes(plan.min_budget) + " (" +
        std::to_string(plan.min_budget) + " bytes)");
  }
  uint64_t cache_bytes = in.ram_budget - pinned_total;
  if (in.expert_cache_bytes) {
    if (in.expert_cache_bytes > cache_bytes) {
      return Status::ResourceExhausted("--expert-cache " + FormatBytes(in.expert_cache_bytes) +
                                       " does not fit in --ram-budget " +
                                       FormatBytes(in.ram_budget) + " after " +
                                       FormatBytes(pinned_total) +
                                       " of pinned weights, KV cache and scratch");
    }
    cache_bytes = in.expert_cache_bytes;
  }
  // Every cached layer gets the same number of slots of its class; what is left over
  // goes to one more slot at a time, largest class first.
  const uint64_t per_layer = one_slot_per_layer ? cache_bytes / one_slot_per_layer : 0;
  uint64_t left = cache_bytes;
  for (SlotClass& c : plan.slot_classes) {
    c.cache_slots = std::min(per_layer * c.cached_layers, c.cached_bundles);
    left -= c.cache_slots * c.slot_bytes;
  }
  for (SlotClass& c : plan.slot_classes) {
    const uint64_t more = std::min(left / c.slot_bytes, c.cached_bundles - c.cache_slots);
    c.cache_slots += more;
    left -= more * c.slot_bytes;
  }
  plan.cache_slots = 0;
  for (const SlotClass& c : plan.slot_classes) plan.cache_slots += c.cache_slots;
  if (plan.cached_bundles() && per_layer < plan.experts_per_token) {
    return Status::ResourceExhausted(
        "--expert-cache " + FormatBytes(cache_bytes) + " holds " +
        std::to_string(plan.cache_slots) + " expert bundles; one token needs " +
        std::to_string(working_set) + " (" + FormatBytes(working_set_bytes) + ")");
  }
  return plan;
}

}  // namespace strata::tiers

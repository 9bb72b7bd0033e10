// The residency plan: where every tensor and every expert bundle of a model lives for
// a given RAM budget.
//   pinned   read into RAM at start and kept: dense tensors (attention, norms, routers,
//            shared experts, dense FFN, output head, embedding), plus the expert bundles
//            of layers matched by a --pin pattern, plus every bundle when all fit
//   cached   expert bundles (gate + up + down of one expert of one layer) that come
//            from disk into a fixed number of 4 KiB-aligned cache slots on demand
//   streamed Engram tables: rows read on demand into the Engram row cache
//            (--engram-cache); pinned instead when the budget is unlimited, when the
//            whole model fits, or when a --pin pattern names them
// The floor: pinned bytes plus one token's routed experts in every MoE layer
// (experts_per_token slots per MoE layer). A budget below it is refused with the
// smallest budget that works. Pure; O(tensors).
//
// Slot classes: a slot is sized for its layer's bundle, not the model's largest, so a
// file whose layers mix types (Q6_K down projections on some layers, IQ2_XXS experts
// among IQ1_S ones) wastes no budget. Layers whose aligned bundles have the same size
// share a class; each class has its own slots (a bundle only ever takes a slot of its
// class), and the cache budget gives every cached layer the same number of slots.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "storage/gguf.h"
#include "util/status.h"

namespace strata::tiers {

// Where one expert's part of one stack (gate, up or down) sits in the file and in a slot.
struct BundleSegment {
  const storage::TensorInfo* stack = nullptr;
  uint64_t slot_offset = 0;  // where this segment's aligned read starts in the slot
  uint64_t slot_bytes = 0;   // room reserved for it (aligned cover of any expert's range)
};

struct MoeLayer {
  uint32_t layer = 0;
  uint32_t n_expert = 0;
  std::array<BundleSegment, 3> segments;  // gate, up, down
  uint64_t bundle_bytes = 0;              // exact bytes of one expert's three ranges
  bool pinned = false;                    // a --pin pattern matched one of its stacks
  uint32_t slot_class = 0;                // index in ResidencyPlan::slot_classes
  uint64_t slot_bytes = 0;                // room one of its bundles takes in a slot
  // Packed files (strata pack): one read per bundle. Segments sit back to back from
  // slot offset 0; a compressed bundle is read to `stage_offset` and decoded to 0.
  const storage::PackedLayer* packed = nullptr;
  uint64_t stage_offset = 0;
};

// The aligned file range a direct read of `range` must cover, and where `range`
// starts inside it.
struct AlignedRead {
  uint64_t offset = 0;
  uint64_t bytes = 0;
  uint64_t skip = 0;
};
AlignedRead AlignForDirectRead(storage::ByteRange range);

struct PlanInputs {
  uint64_t ram_budget = 0;          // 0: no limit (everything pinned)
  uint64_t expert_cache_bytes = 0;  // 0: whatever the budget leaves after the pinned set
  uint32_t experts_per_token = 1;
  std::vector<std::string> pin_patterns;  // fnmatch(3) globs over tensor names
  uint64_t engram_cache_bytes = 64ull << 20;  // the row cache, when tables stay on disk
  // RAM the engine needs beyond the file's tensors, counted like pinned weights: the
  // sessions' KV caches and scratch, and tensors it derives at load (legacy attn_kv_b
  // split into k_b and v_b). Part of the floor; the expert cache gets what is left.
  uint64_t session_bytes = 0;
  uint64_t derived_bytes = 0;
};

// Slots of one size, for the layers whose bundles need exactly that room.
struct SlotClass {
  uint64_t slot_bytes = 0;
  uint32_t layers = 0;          // MoE layers of this class
  uint32_t cached_layers = 0;   // of which not pinned
  uint64_t pinned_bundles = 0;  // permanent slots (pinned layers, or everything resident)
  uint64_t cache_slots = 0;     // slots shared by the class's cached bundles
  uint64_t cached_bundles = 0;  // bundles that may come from disk into them
};

struct ResidencyPlan {
  std::vector<const storage::TensorInfo*> pinned_tensors;  // read whole into RAM
  uint64_t pinned_dense_bytes = 0;
  std::vector<MoeLayer> moe_layers;         // in layer order
  std::vector<int32_t> moe_index_of_layer;  // layer -> index in moe_layers, -1 if dense
  uint64_t slot_bytes = 0;                  // the largest slot (of any class)
  std::vector<SlotClass> slot_classes;      // by size, largest first
  uint64_t total_bundles = 0;
  uint64_t pinned_bundles = 0;       // always resident, outside the cache slots
  uint64_t cache_slots = 0;          // cache slots of every class
  uint64_t routed_expert_bytes = 0;  // every bundle, exact bytes
  uint64_t min_budget = 0;           // the floor
  uint64_t budget = 0;               // what was asked (0 = unlimited)
  uint32_t experts_per_token = 1;
  bool all_resident = false;  // every bundle pinned: no disk reads at run time
  std::vector<const storage::TensorInfo*> engram_tables;  // streamed (not pinned)
  uint64_t engram_table_bytes = 0;
  uint64_t engram_cache_bytes = 0;  // the row cache for the streamed tables
  uint64_t session_bytes = 0;       // PlanInputs::session_bytes
  uint64_t derived_bytes = 0;       // PlanInputs::derived_bytes

  // Bytes the plan keeps in RAM: pinned tensors and what the engine derives from them,
  // pinned bundles, the cache slots, the Engram row cache, the sessions' state.
  uint64_t resident_bytes() const {
    return pinned_dense_bytes + derived_bytes + slot_arena_bytes() + engram_cache_bytes +
           session_bytes;
  }
  // Every slot, permanent and cache, of every class.
  uint64_t slot_arena_bytes() const {
    uint64_t b = 0;
    for (const SlotClass& c : slot_classes) b += (c.pinned_bundles + c.cache_slots) * c.slot_bytes;
    return b;
  }
  uint64_t cached_bundles() const { return total_bundles - pinned_bundles; }
  const MoeLayer* moe_layer(uint32_t layer) const {
    return layer < moe_index_of_layer.size() && moe_index_of_layer[layer] >= 0
               ? &moe_layers[static_cast<size_t>(moe_index_of_layer[layer])]
               : nullptr;
  }
};

// Errors: a budget below the floor (the message gives the smallest budget that works),
// an expert cache too small for one token, expert stacks of one layer that disagree.
Result<ResidencyPlan> PlanResidency(const storage::GgufFile& file, const PlanInputs& in);

}  // namespace strata::tiers

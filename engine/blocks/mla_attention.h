// Multi-head latent attention (DeepSeek-V2/V3, docs/MODEL.md §2) in the absorbed-weight
// form: attn_k_b is folded into each head's query, attention runs over the cached
// latents (norm(kv_a) and the roped key, one row per position), attn_v_b is applied
// to the weighted latents. Owns the sequence's latent cache. Rows past the position
// are simply overwritten, so a failed chunk needs no undo. Every output value is
// computed by one thread in a fixed order: any thread count gives the same bits.
#pragma once

#include <cstdint>
#include <vector>

#include "engine/blocks/block_context.h"
#include "engine/blocks/persistent_state.h"
#include "engine/kv_cache.h"

namespace strata::engine {

class MlaAttention : public PersistentState {
 public:
  MlaAttention(BlockContext& ctx, uint32_t n_ctx, storage::GgmlType kv_type);

  // Layer `il`'s attention for the chunk: reads `in` [n][E], writes `out` [n][E].
  void Forward(uint32_t il, const Chunk& chunk, const float* in, float* out);

  void Save(int64_t n_past, ByteWriter& out) const override { cache_.Save(n_past, out); }
  bool Load(int64_t n_past, ByteReader& in) override { return cache_.Load(n_past, in); }

 private:
  BlockContext& ctx_;
  MlaKvCache cache_;
  std::vector<float> q_a_, q_, kv_, q_abs_, rows_f32_, probs_, o_lat_, attn_out_;
};

}  // namespace strata::engine

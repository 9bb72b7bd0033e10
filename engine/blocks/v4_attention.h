// DeepSeek-V4's hybrid attention (docs/MODEL.md §8): one shared key/value head over a
// sliding window of the last keys plus, in CSA/HCA layers, compressed entries (every
// HCA entry; the CSA entries the lightning indexer selects), a per-head sink in the
// softmax, and a grouped low-rank output. Owns each layer's state (engine/blocks/
// v4_state.h); writes go through an undo log so a failed chunk rolls back. Per token
// and block of heads by one thread each: any thread count gives the same bits.
#pragma once

#include <cstdint>
#include <vector>

#include "engine/blocks/block_context.h"
#include "engine/blocks/persistent_state.h"
#include "engine/blocks/sequence_state.h"
#include "engine/blocks/v4_state.h"

namespace strata::engine {

class V4Attention : public SequenceState, public PersistentState {
 public:
  V4Attention(BlockContext& ctx, uint32_t n_ctx);

  // Layer `il`'s attention for the chunk: reads `in` [n][E], writes `out` [n][E].
  void Forward(uint32_t il, const Chunk& chunk, const float* in, float* out);
  const V4Counters& counters() const { return counters_; }

  void Checkpoint(int64_t start, int64_t n) override;
  void Rollback() override;
  void Commit() override { undo_.Clear(); }
  void Reset() override;

  void Save(int64_t n_past, ByteWriter& out) const override;
  bool Load(int64_t n_past, ByteReader& in) override;

 private:
  // Top-k CSA entries for each chunk token, by the lightning indexer (docs/MODEL.md §8.9).
  void Indexer(uint32_t il, const Chunk& chunk, const float* h, const float* q_res,
               std::vector<std::vector<int64_t>>* selected);

  BlockContext& ctx_;
  std::vector<V4LayerState> state_;
  UndoLog undo_;
  std::vector<std::pair<int64_t, int64_t>> entries_before_;  // per layer, at the checkpoint
  V4Counters counters_;
  std::vector<float> q_res_, q_, kv_, attn_out_;
};

}  // namespace strata::engine

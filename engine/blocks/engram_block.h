// Engram conditional memory (docs/MODEL.md §10): at an Engram layer, the rows its
// hashed n-grams address are gathered, decoded as the file declares, and gated into
// each residual stream, in V4.1's module form or the demo form (which adds a causal
// depthwise conv over the gated values, kept in a ring of the last positions).
// Addressing is prefetch's (prefetch/engram_addresser.h): the chunk's rows are asked
// for when its tokens are known, before layer 0, and taken here. The hash history and
// the ring are sequence state: a failed chunk rolls both back.
#pragma once

#include <cstdint>
#include <vector>

#include "engine/blocks/block_context.h"
#include "engine/blocks/persistent_state.h"
#include "engine/blocks/residual.h"
#include "engine/blocks/sequence_state.h"
#include "prefetch/engram_addresser.h"

namespace strata::engine {

class EngramBlock : public SequenceState, public PersistentState {
 public:
  // REQUIRES: the model has Engram layers.
  explicit EngramBlock(BlockContext& ctx);

  // Layer `il`'s module, applied in place to the residual's streams of the chunk's
  // tokens, which are its rows from `row`.
  Status Forward(uint32_t il, const Chunk& chunk, int64_t row, Residual& x);
  // Tokens one chunk may hold so that its rows fit the row cache.
  int64_t chunk_limit() const { return ctx_.model.engram_chunk_limit(); }

  Status BeginChunk(const Chunk& chunk) override;
  void EndChunk() override { addresser_.EndChunk(); }
  void Checkpoint(int64_t start, int64_t n) override;
  void Rollback() override;
  void Reset() override { addresser_.Reset(); }

  void Save(int64_t n_past, ByteWriter& out) const override;
  bool Load(int64_t n_past, ByteReader& in) override;

 private:
  // The chunk's rows of layer `il`, decoded into e_ [n][cols * head_dim].
  Status Gather(uint32_t il, const Chunk& chunk);
  void ApplyV41(const DeepseekLayer& L, const Chunk& chunk, int64_t row, Residual& x);
  void ApplyDemo(const DeepseekLayer& L, const Chunk& chunk, int64_t row, Residual& x);

  BlockContext& ctx_;
  prefetch::EngramAddresser addresser_;
  // The demo form's conv inputs of the last positions: [layer][ring][HC*E], slot =
  // position % ring.
  std::vector<float> ring_;
  int64_t ring_len_ = 0;
  // At the checkpoint: the hash history and the ring slots the call will overwrite.
  prefetch::EngramHasher history_before_;
  std::vector<float> ring_before_;
  int64_t ring_start_ = 0;
  std::vector<float> e_, kv_, v_;
};

}  // namespace strata::engine

// One architecture's forward pass over a chunk, built from shared blocks
// (engine/blocks/): what each layer runs and in what order. A graph is made per
// session by the registry (engine/graphs/registry.h) and owns that session's blocks
// and their state; the session core (engine/session.h) owns everything that does not
// depend on the architecture: the token loop, chunking, the residual's embedding and
// head, the lifecycle of the graph's sequence state, and the timings.
// Adding an architecture: a graph file and one line in the registry.
#pragma once

#include <cstdint>
#include <limits>
#include <span>
#include <vector>

#include "engine/blocks/block_context.h"
#include "engine/blocks/residual.h"
#include "engine/blocks/sequence_state.h"
#include "engine/blocks/v4_state.h"
#include "util/status.h"

namespace strata::engine {

class Graph {
 public:
  virtual ~Graph() = default;

  // Layer `il` over the chunk, reading and updating its residual.
  virtual Status Layer(uint32_t il, const Chunk& chunk, Residual& x) = 0;
  // Tokens one chunk may hold (Engram: a chunk's rows must fit the row cache).
  virtual int64_t chunk_limit() const { return std::numeric_limits<int64_t>::max(); }
  // V4's attention counters; null for graphs without V4 attention.
  virtual const V4Counters* v4_counters() const { return nullptr; }

  // The blocks whose sequence state the session core checkpoints, rolls back and resets.
  std::span<SequenceState* const> states() const { return states_; }

 protected:
  void AddState(SequenceState* state) { states_.push_back(state); }

 private:
  std::vector<SequenceState*> states_;
};

}  // namespace strata::engine

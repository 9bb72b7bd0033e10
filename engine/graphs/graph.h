// One architecture's forward pass over a batch, built from shared blocks
// (engine/blocks/): what each layer runs and in what order. A graph is made per
// session by the registry (engine/graphs/registry.h) and owns that session's blocks
// and the state of each of its sequences (lanes); the session core (engine/session.h) owns everything that does not
// depend on the architecture: the token loop, chunking, the residual's embedding and
// head, the lifecycle of the graph's sequence state, and the timings.
// Adding an architecture: a graph file and one line in the registry.
#pragma once

#include <cstdint>
#include <limits>
#include <span>
#include <vector>

#include "engine/blocks/block_context.h"
#include "engine/blocks/persistent_state.h"
#include "engine/blocks/residual.h"
#include "engine/blocks/sequence_state.h"
#include "engine/blocks/v4_state.h"
#include "util/status.h"

namespace strata::engine {

class Graph {
 public:
  virtual ~Graph() = default;

  // Layer `il` over the batch, reading and updating its residual.
  virtual Status Layer(uint32_t il, const Batch& batch, Residual& x) = 0;
  // Tokens one chunk may hold (Engram: a chunk's rows must fit the row cache).
  virtual int64_t chunk_limit() const { return std::numeric_limits<int64_t>::max(); }
  // V4's attention counters; null for graphs without V4 attention.
  virtual const V4Counters* v4_counters() const { return nullptr; }

  // The blocks whose sequence state the session core checkpoints, rolls back and
  // resets, for sequence `lane`.
  std::span<SequenceState* const> states(uint32_t lane) const {
    if (lane >= states_.size()) return {};
    return states_[lane];
  }
  // Whether any block keeps sequence state beyond the position.
  bool has_states() const { return !states_.empty() && !states_[0].empty(); }
  // Every block that holds sequence `lane`'s state (the KV cache included), in a
  // fixed order: what a saved sequence consists of.
  std::span<PersistentState* const> persistent(uint32_t lane) const {
    if (lane >= persistent_.size()) return {};
    return persistent_[lane];
  }

 protected:
  void AddPersistent(uint32_t lane, PersistentState* state) {
    if (persistent_.size() <= lane) persistent_.resize(lane + 1);
    persistent_[lane].push_back(state);
  }
  void AddState(uint32_t lane, SequenceState* state) {
    if (states_.size() <= lane) states_.resize(lane + 1);
    states_[lane].push_back(state);
  }

 private:
  std::vector<std::vector<SequenceState*>> states_;
  std::vector<std::vector<PersistentState*>> persistent_;
};

}  // namespace strata::engine

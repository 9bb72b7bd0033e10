// A block that keeps per-sequence state beyond the position (V4's windows and
// compressors, Engram's hash history and conv ring) takes part in the session core's
// lifecycle through this interface. An Eval call is Checkpoint, then per chunk
// BeginChunk .. EndChunk, then Commit, or Rollback after a failed chunk: the sequence
// is then exactly as it was at the Checkpoint. Reset starts a new sequence.
#pragma once

#include <cstdint>

#include "engine/blocks/block_context.h"
#include "util/status.h"

namespace strata::engine {

class SequenceState {
 public:
  virtual ~SequenceState() = default;
  // The call will append `n` tokens from position `start`.
  virtual void Checkpoint(int64_t start, int64_t n) = 0;
  virtual void Rollback() = 0;
  virtual void Commit() {}
  virtual void Reset() = 0;
  // The chunk's tokens are known, before its first layer runs.
  virtual Status BeginChunk(const Chunk& chunk) {
    (void)chunk;
    return Status::Ok();
  }
  // The chunk is over: it ran, or a layer failed.
  virtual void EndChunk() {}
};

}  // namespace strata::engine

// A block whose per-sequence state can be written out and read back: `strata serve`
// keeps prompt prefixes on disk this way (server/prompt_store.h). After Load, the
// sequence continues bit for bit as the one that was saved. The bytes are for the same
// model, KV type and a context at least as long; the reader checks every size, so
// bytes of another shape are refused, not misread.
#pragma once

#include <cstdint>

#include "util/byte_io.h"

namespace strata::engine {

class PersistentState {
 public:
  virtual ~PersistentState() = default;
  // Appends the state of the sequence's first `n_past` tokens.
  virtual void Save(int64_t n_past, ByteWriter& out) const = 0;
  // Replaces the state with one saved at `n_past` tokens. False: the bytes do not
  // fit this block (truncated, another shape); the state is then unspecified and the
  // caller resets it.
  virtual bool Load(int64_t n_past, ByteReader& in) = 0;
};

}  // namespace strata::engine

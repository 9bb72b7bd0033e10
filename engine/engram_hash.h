// Engram's n-gram addressing (docs/GGUF.md §4.4, as ds4 implements it): each token
// becomes cols() row ids per Engram layer, from the compressed ids of the token and the
// max_ngram - 1 before it. The history is per sequence; a masked (dead) position, and
// the sequence start, turn that slot and every older one into pad. Copying a hasher
// snapshots its history. Thread-compatible; O(layers x cols) per token.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "engine/engram_config.h"

namespace strata::engine {

class EngramHasher {
 public:
  explicit EngramHasher(const EngramConfig& config);

  // Row ids for one token, laid out [layer][col]; each already includes its column's
  // offset, so it indexes the layer's whole table. `live` false marks a dead position.
  // REQUIRES: 0 <= token < token_map.size(); rows.size() == n_layers * cols.
  void Next(int32_t token, bool live, std::span<uint64_t> rows);
  void Reset();
  size_t rows_per_token() const { return static_cast<size_t>(c_->n_layers()) * c_->cols(); }

 private:
  static constexpr int64_t kDead = -1;
  const EngramConfig* c_;
  std::vector<int64_t> tail_;  // previous compressed ids, newest first
  std::vector<uint64_t> ids_;
};

}  // namespace strata::engine

// Engram's n-gram addressing (docs/GGUF.md §4.4, as ds4 implements it): each token
// becomes cols() row ids per Engram layer, from the compressed ids of the token and the
// max_ngram - 1 before it. The constants are the model's (EngramAddressing, which
// engine::EngramConfig extends with how rows are decoded and used); the history is per
// sequence. A masked (dead) position, and the sequence start, turn that slot and every
// older one into pad. Copying a hasher snapshots its history. Thread-compatible;
// O(layers x cols) per token.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace strata::prefetch {

// What addressing needs to know of a model's Engram tables; a value type.
struct EngramAddressing {
  std::vector<uint32_t> layer_ids;   // model layers with a table, ascending
  std::vector<uint64_t> rows;        // per Engram layer: rows of its table (sum of primes)
  uint32_t compressed_vocab = 0;     // token_map values are below this
  uint32_t pad_id = 0;               // a compressed id
  std::vector<uint32_t> token_map;   // raw token id -> compressed id
  std::vector<uint64_t> primes;      // [layer][cols()], order-major then head
  std::vector<uint64_t> multipliers; // [layer][max_ngram], index 0 = current token
  uint32_t max_ngram = 4;            // orders 2..max_ngram
  uint32_t n_heads = 8;              // hash heads per order

  bool enabled() const { return !layer_ids.empty(); }
  uint32_t n_layers() const { return static_cast<uint32_t>(layer_ids.size()); }
  uint32_t cols() const { return (max_ngram - 1) * n_heads; }  // rows per token per layer
  uint64_t prime(uint32_t engram_layer, uint32_t col) const {
    return primes[static_cast<size_t>(engram_layer) * cols() + col];
  }
  uint64_t multiplier(uint32_t engram_layer, uint32_t j) const {
    return multipliers[static_cast<size_t>(engram_layer) * max_ngram + j];
  }
};

class EngramHasher {
 public:
  // `addressing` must outlive the hasher.
  explicit EngramHasher(const EngramAddressing& addressing);

  // Row ids for one token, laid out [layer][col]; each already includes its column's
  // offset, so it indexes the layer's whole table. `live` false marks a dead position.
  // REQUIRES: 0 <= token < token_map.size(); rows.size() == n_layers * cols.
  void Next(int32_t token, bool live, std::span<uint64_t> rows);
  void Reset();
  size_t rows_per_token() const { return static_cast<size_t>(a_->n_layers()) * a_->cols(); }
  // The history Next reads (the previous tokens' compressed ids, newest first), to
  // save a sequence and restore it later. SetHistory fails on another length.
  const std::vector<int64_t>& history() const { return tail_; }
  bool SetHistory(const std::vector<int64_t>& history) {
    if (history.size() != tail_.size()) return false;
    tail_ = history;
    return true;
  }

 private:
  static constexpr int64_t kDead = -1;
  const EngramAddressing* a_;
  std::vector<int64_t> tail_;  // previous compressed ids, newest first
  std::vector<uint64_t> ids_;
};

}  // namespace strata::prefetch

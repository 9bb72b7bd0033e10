#include "prefetch/engram_hash.h"

#include <algorithm>

namespace strata::prefetch {

EngramHasher::EngramHasher(const EngramAddressing& addressing)
    : a_(&addressing), tail_(addressing.max_ngram - 1, kDead), ids_(addressing.max_ngram) {}

void EngramHasher::Reset() { std::fill(tail_.begin(), tail_.end(), kDead); }

void EngramHasher::Next(int32_t token, bool live, std::span<uint64_t> rows) {
  const EngramAddressing& c = *a_;
  const int64_t cur = live ? int64_t{c.token_map[static_cast<size_t>(token)]} : kDead;
  // Once a slot is dead, it and every older one read as pad.
  bool blocked = false;
  for (uint32_t j = 0; j < c.max_ngram; ++j) {
    const int64_t id = j == 0 ? cur : tail_[j - 1];
    blocked = blocked || id == kDead;
    ids_[j] = blocked ? c.pad_id : static_cast<uint64_t>(id);
  }
  const uint32_t cols = c.cols();
  for (uint32_t l = 0; l < c.n_layers(); ++l) {
    uint64_t h = ids_[0] * c.multiplier(l, 0);
    uint64_t offset = 0;
    for (uint32_t j = 1; j < c.max_ngram; ++j) {
      h ^= ids_[j] * c.multiplier(l, j);
      for (uint32_t head = 0; head < c.n_heads; ++head) {
        const uint32_t col = (j - 1) * c.n_heads + head;
        const uint64_t p = c.prime(l, col);
        rows[static_cast<size_t>(l) * cols + col] = h % p + offset;
        offset += p;
      }
    }
  }
  for (size_t j = tail_.size(); j-- > 1;) tail_[j] = tail_[j - 1];
  if (!tail_.empty()) tail_[0] = cur;
}

}  // namespace strata::prefetch

// The queue of ops waiting for a free I/O slot, shared by the reader backends: demand
// ops before prefetch ops, FIFO within a priority; cancel and promote by tag.
// Not thread-safe: each backend guards it with its own mutex.
#pragma once

#include <algorithm>
#include <deque>
#include <optional>

#include "storage/async_reader.h"

namespace strata::storage {

class ReadQueue {
 public:
  void Push(const ReadOp& op) { queue(op.priority).push_back(op); }
  bool empty() const { return demand_.empty() && prefetch_.empty(); }

  std::optional<ReadOp> Pop() {
    for (auto* q : {&demand_, &prefetch_}) {
      if (!q->empty()) {
        ReadOp op = q->front();
        q->pop_front();
        return op;
      }
    }
    return std::nullopt;
  }

  size_t Cancel(uint64_t tag) {
    size_t n = 0;
    for (auto* q : {&demand_, &prefetch_}) {
      n +=
          static_cast<size_t>(std::erase_if(*q, [tag](const ReadOp& op) { return op.tag == tag; }));
    }
    return n;
  }

  void Promote(uint64_t tag) {
    for (auto it = prefetch_.begin(); it != prefetch_.end();) {
      if (it->tag == tag) {
        it->priority = IoPriority::kDemand;
        demand_.push_back(*it);
        it = prefetch_.erase(it);
      } else {
        ++it;
      }
    }
  }

 private:
  std::deque<ReadOp>& queue(IoPriority p) { return p == IoPriority::kDemand ? demand_ : prefetch_; }
  std::deque<ReadOp> demand_, prefetch_;
};

}  // namespace strata::storage

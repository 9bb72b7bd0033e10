#include "tiers/belady.h"

#include <limits>
#include <set>
#include <unordered_map>
#include <utility>
#include <vector>

namespace strata::tiers {

uint64_t BeladyHits(std::span<const uint32_t> trace, uint64_t capacity) {
  if (capacity == 0) return 0;
  const size_t n = trace.size();
  constexpr size_t kNever = std::numeric_limits<size_t>::max();
  // next[i]: the position of the next use of trace[i] after i.
  std::vector<size_t> next(n, kNever);
  std::unordered_map<uint32_t, size_t> last;
  for (size_t i = n; i-- > 0;) {
    auto it = last.find(trace[i]);
    next[i] = it == last.end() ? kNever : it->second;
    last[trace[i]] = i;
  }
  // Resident keys ordered by their next use; the last element is evicted first.
  std::set<std::pair<size_t, uint32_t>> by_next;
  std::unordered_map<uint32_t, size_t> resident;  // key -> its next use
  uint64_t hits = 0;
  for (size_t i = 0; i < n; ++i) {
    const uint32_t key = trace[i];
    auto it = resident.find(key);
    if (it != resident.end()) {
      ++hits;
      by_next.erase({it->second, key});
    } else if (resident.size() == capacity) {
      const auto victim = std::prev(by_next.end());
      resident.erase(victim->second);
      by_next.erase(victim);
    }
    resident[key] = next[i];
    by_next.insert({next[i], key});
  }
  return hits;
}

}  // namespace strata::tiers

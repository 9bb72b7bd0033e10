// Counter structs (cache, row cache and session statistics) are plain aggregates of
// uint64_t running totals; what happened between two snapshots is their member-wise
// difference. CounterDelta computes it for any such struct without naming a field, so
// adding a counter cannot leave a hand-written Since() behind.
#pragma once

#include <array>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <type_traits>

namespace strata {

// now - before, member by member. REQUIRES: every member of S is a uint64_t (checked as
// far as the language allows: no padding, no floating-point member, a multiple of 8 bytes).
template <typename S>
S CounterDelta(const S& now, const S& before) {
  static_assert(std::is_trivially_copyable_v<S> && std::has_unique_object_representations_v<S> &&
                    sizeof(S) % sizeof(uint64_t) == 0 && alignof(S) == alignof(uint64_t),
                "CounterDelta needs a struct of uint64_t counters");
  using Words = std::array<uint64_t, sizeof(S) / sizeof(uint64_t)>;
  Words a = std::bit_cast<Words>(now);
  const Words b = std::bit_cast<Words>(before);
  for (size_t i = 0; i < a.size(); ++i) a[i] -= b[i];
  return std::bit_cast<S>(a);
}

}  // namespace strata

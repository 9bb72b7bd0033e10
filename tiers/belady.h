// Belady's optimal replacement (MIN), replayed offline over a recorded trace of cache
// keys: on a miss with a full cache, evict the key whose next use is farthest away.
// No online policy can hit more often at the same capacity, so `bench` prints it next
// to the achieved hit rate. O(n log capacity) time, O(n) memory. Pure.
#pragma once

#include <cstdint>
#include <span>

namespace strata::tiers {

// Hits of an optimal cache of `capacity` entries over `trace`, starting empty.
uint64_t BeladyHits(std::span<const uint32_t> trace, uint64_t capacity);

}  // namespace strata::tiers

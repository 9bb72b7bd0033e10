// What the process costs: peak resident set size. Thread-safe.
#pragma once

#include <cstdint>

namespace strata {

// Peak RSS of this process so far, in bytes.
uint64_t PeakRssBytes();

}  // namespace strata

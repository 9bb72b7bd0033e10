// Internal to engine/tokenizer: Unicode general-category ranges (generated table).
#pragma once

#include <cstddef>
#include <cstdint>

namespace strata::engine::unicode {

struct CategoryRange {
  uint32_t first;
  uint32_t last;
  uint8_t flags;  // one of kLetter, kMark, kNumber, kPunct, kSymbol (unicode.h)
};

extern const char* const kUnicodeVersion;
extern const CategoryRange kCategoryRanges[];  // sorted, disjoint
extern const size_t kCategoryRangeCount;

}  // namespace strata::engine::unicode

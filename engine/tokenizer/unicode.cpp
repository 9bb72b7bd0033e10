#include "engine/tokenizer/unicode.h"

#include <algorithm>

#include "engine/tokenizer/unicode_data.h"
#include "util/utf8.h"

namespace strata::engine::unicode {

uint8_t CategoryFlags(uint32_t cp) {
  if (cp & kInvalid) return 0;
  const CategoryRange* begin = kCategoryRanges;
  const CategoryRange* end = kCategoryRanges + kCategoryRangeCount;
  const CategoryRange* it = std::upper_bound(
      begin, end, cp, [](uint32_t v, const CategoryRange& r) { return v < r.first; });
  if (it == begin) return 0;
  --it;
  return cp <= it->last ? it->flags : 0;
}

bool IsWhitespace(uint32_t cp) {
  return (cp >= 0x09 && cp <= 0x0D) || cp == 0x20 || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
         (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F ||
         cp == 0x205F || cp == 0x3000;
}

std::vector<CodepointSpan> DecodeUtf8(std::string_view text) {
  std::vector<CodepointSpan> out;
  out.reserve(text.size());
  uint32_t cp;
  for (size_t i = 0; i < text.size();) {
    const size_t len = DecodeUtf8Char(text, i, &cp);
    if (len == 0) {  // an invalid byte stands for itself
      out.push_back({kInvalid | static_cast<uint8_t>(text[i]), static_cast<uint32_t>(i), 1});
      ++i;
      continue;
    }
    out.push_back({cp, static_cast<uint32_t>(i), static_cast<uint32_t>(len)});
    i += len;
  }
  return out;
}

void AppendUtf8(uint32_t cp, std::string* out) {
  if (cp & kInvalid) {
    out->push_back(static_cast<char>(cp & 0xFF));
  } else {
    strata::AppendUtf8(cp, out);
  }
}

}  // namespace strata::engine::unicode

// The Unicode facts the tokenizer needs: UTF-8 decoding that never fails (an invalid
// byte decodes to itself as an "invalid" code point so every byte survives the
// round trip), general categories and White_Space. O(log ranges) per lookup.
// Pure; thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace strata::engine::unicode {

enum Flags : uint8_t {
  kLetter = 1,   // \p{L}
  kMark = 2,     // \p{M}
  kNumber = 4,   // \p{N}
  kPunct = 8,    // \p{P}
  kSymbol = 16,  // \p{S}
};

uint8_t CategoryFlags(uint32_t cp);
bool IsWhitespace(uint32_t cp);  // \s as llama.cpp defines it (Unicode White_Space)

// Marks a byte that is not part of valid UTF-8: kInvalid | byte.
inline constexpr uint32_t kInvalid = 0x80000000u;

struct CodepointSpan {
  uint32_t cp;      // the code point, or kInvalid | byte
  uint32_t offset;  // byte offset in the text
  uint32_t length;  // bytes
};
std::vector<CodepointSpan> DecodeUtf8(std::string_view text);
void AppendUtf8(uint32_t cp, std::string* out);

}  // namespace strata::engine::unicode

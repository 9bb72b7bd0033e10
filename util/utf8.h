// UTF-8 (RFC 3629: no overlongs, no surrogates, at most U+10FFFF): decoding one
// character at a time, encoding, validation. Pure; thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace strata {

// Decodes the character starting at text[i]: returns its length in bytes (1-4) and sets
// *cp, or returns 0 if the bytes there are not a valid character. In that case
// *truncated (if given) says whether they are a valid prefix cut off by the end of text.
size_t DecodeUtf8Char(std::string_view text, size_t i, uint32_t* cp, bool* truncated = nullptr);

// Appends the encoding of code point `cp` (REQUIRES: cp <= 0x10FFFF).
void AppendUtf8(uint32_t cp, std::string* out);

bool IsValidUtf8(std::string_view text);

// `text` with every byte outside printable ASCII shown as \xNN, cut to `max_chars`:
// safe to put in an error line whatever a hostile file contains.
std::string PrintableForError(std::string_view text, size_t max_chars = 64);

// `text` as a terminal may show it: C0 controls other than tab, newline and carriage
// return, and DEL, become caret notation (ESC is ^[, BEL ^G, DEL ^?); C1 controls and
// invalid bytes become U+FFFD. Model output goes through this before a terminal, so it
// cannot send escape sequences: change the character set, move the cursor, or ask the
// terminal for replies that would arrive as typed input.
std::string SafeForTerminal(std::string_view text);

}  // namespace strata

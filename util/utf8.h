// UTF-8 validation (RFC 3629: no overlongs, no surrogates, at most U+10FFFF). Pure.
#pragma once

#include <string_view>

namespace strata {

bool IsValidUtf8(std::string_view text);

// `text` with every byte outside printable ASCII shown as \xNN, cut to `max_chars`:
// safe to put in an error line whatever a hostile file contains.
std::string PrintableForError(std::string_view text, size_t max_chars = 64);

}  // namespace strata

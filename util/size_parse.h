// Byte sizes as users write them on the command line: "512", "64K", "1.5G", "48GiB".
// Suffixes are binary (K = 1024), case-insensitive, with optional "B"/"iB". Pure.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "util/status.h"

namespace strata {

Result<uint64_t> ParseSize(std::string_view text);

// "1.50 GiB", "12.0 MiB", "512 B": for humans, three significant digits.
std::string FormatBytes(uint64_t bytes);

}  // namespace strata

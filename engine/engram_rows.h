// Decoding one Engram table row to f32 (docs/GGUF.md §4.3). The E4M3 + E8M0
// encoding is rounded to BF16 after scaling, as ds4 does to match the reference. A row
// with a NaN code (0x7f/0xff) or a scale of 255 is invalid. Pure; thread-safe.
#pragma once

#include <cstdint>

#include "engine/engram_config.h"

namespace strata::engine {

// Writes `dim` values; false when the row holds an invalid code or scale.
bool DecodeEngramRow(EngramEncoding encoding, const uint8_t* row, uint32_t dim, float* out);

// The inverse for synthetic tables: one E4M3FN code for a value already divided by its
// group scale (round to nearest, saturating at +-448).
uint8_t EncodeE4m3(float value);

}  // namespace strata::engine

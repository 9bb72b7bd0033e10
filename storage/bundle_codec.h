// How one expert bundle (gate + up + down bytes of one expert, concatenated) is stored
// in a packed file: a codec (none, lz4, zstd at a level) and an optional byte-grouping
// transform for 2- and 4-byte floats (F16, BF16, F32), which puts every element's
// first byte together, then every second byte, ..., so the slowly varying exponent
// bytes sit side by side and compress. Quantized blocks are never grouped: their scale
// and quant bytes interleave in a layout the transform cannot help.
//
// The codec byte in the index: bits 0..3 the codec, bit 4 the grouping. Decode checks
// the stored bytes' XXH3-64 first (unless told not to), then decompresses into exactly
// `raw` bytes; any disagreement is Corruption, never a crash or a short result.
// Pure functions; thread-safe.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "util/status.h"

namespace strata::storage {

enum class Codec : uint8_t { kNone = 0, kLz4 = 1, kZstd = 2 };
inline constexpr uint8_t kCodecMask = 0x0F;
inline constexpr uint8_t kGroupedBit = 0x10;

// What the packer is asked for, e.g. "zstd:9". `group` applies where the element
// width allows it.
struct CodecChoice {
  Codec codec = Codec::kNone;
  int level = 0;  // zstd only; 0 = the default (3)
  bool group = false;

  std::string ToString() const;  // "none", "lz4", "zstd:3", "zstd:3+group"
  bool operator==(const CodecChoice&) const = default;
};

// "none", "lz4", "zstd", "zstd:LEVEL" (1..22), each optionally followed by "+group".
Result<CodecChoice> ParseCodecChoice(std::string_view text);
std::string_view CodecName(Codec c);
// "none", "lz4", "zstd", with "+group" when the grouped bit is set; "?" when unknown.
std::string CodecByteName(uint8_t codec_byte);
bool IsKnownCodecByte(uint8_t codec_byte);

// The parts of a bundle, in order, and the element width grouping uses for each
// (1 = leave alone).
struct BundleLayout {
  std::array<uint64_t, 3> bytes = {0, 0, 0};
  std::array<uint32_t, 3> group_width = {1, 1, 1};
  uint64_t raw_bytes() const { return bytes[0] + bytes[1] + bytes[2]; }
  bool groupable() const;
};

uint64_t BundleChecksum(std::span<const uint8_t> stored);

// Encodes `raw` as `choice` asks; falls back to storing it raw (codec byte 0) when
// compression would not make it smaller. Returns the codec byte; `stored` receives
// the bytes to write.
uint8_t EncodeBundle(std::span<const uint8_t> raw, const BundleLayout& layout,
                     const CodecChoice& choice, std::vector<uint8_t>* stored);

// Decodes `stored` into `raw` (exactly layout.raw_bytes()). With `verify`, the stored
// bytes must hash to `checksum` first. `stored` and `raw` must not overlap unless the codec
// is none and they are the same bytes. Errors say what disagreed, without context.
Status DecodeBundle(uint8_t codec_byte, std::span<const uint8_t> stored, const BundleLayout& layout,
                    bool verify, uint64_t checksum, std::span<uint8_t> raw);

}  // namespace strata::storage

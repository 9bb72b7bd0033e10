#include "storage/bundle_codec.h"

#include <lz4.h>
#include <xxhash.h>
#include <zstd.h>

#include <charconv>
#include <climits>
#include <cstring>

#include "util/utf8.h"

namespace strata::storage {
namespace {

constexpr int kDefaultZstdLevel = 3;

// Element i's byte j moves to j * n + i (n elements per part): bytes of equal
// significance become neighbours.
void Group(const uint8_t* in, uint8_t* out, uint64_t bytes, uint32_t width) {
  const uint64_t n = bytes / width;
  for (uint64_t i = 0; i < n; ++i) {
    for (uint32_t j = 0; j < width; ++j) out[j * n + i] = in[i * width + j];
  }
}

void Ungroup(const uint8_t* in, uint8_t* out, uint64_t bytes, uint32_t width) {
  const uint64_t n = bytes / width;
  for (uint64_t i = 0; i < n; ++i) {
    for (uint32_t j = 0; j < width; ++j) out[i * width + j] = in[j * n + i];
  }
}

void ApplyGrouping(const uint8_t* in, uint8_t* out, const BundleLayout& layout, bool inverse) {
  uint64_t at = 0;
  for (int part = 0; part < 3; ++part) {
    const uint64_t n = layout.bytes[part];
    const uint32_t w = layout.group_width[part];
    if (w > 1 && n % w == 0) {
      (inverse ? Ungroup : Group)(in + at, out + at, n, w);
    } else {
      std::memcpy(out + at, in + at, n);
    }
    at += n;
  }
}

}  // namespace

bool BundleLayout::groupable() const {
  for (int i = 0; i < 3; ++i) {
    if (group_width[i] > 1 && bytes[i] % group_width[i] == 0) return true;
  }
  return false;
}

std::string_view CodecName(Codec c) {
  switch (c) {
    case Codec::kNone:
      return "none";
    case Codec::kLz4:
      return "lz4";
    case Codec::kZstd:
      return "zstd";
  }
  return "?";
}

bool IsKnownCodecByte(uint8_t b) {
  if (b & ~(kCodecMask | kGroupedBit)) return false;
  const uint8_t c = b & kCodecMask;
  if (c > static_cast<uint8_t>(Codec::kZstd)) return false;
  return !(c == 0 && (b & kGroupedBit));  // grouping without a codec is never written
}

std::string CodecByteName(uint8_t b) {
  if (!IsKnownCodecByte(b)) return "?";
  std::string s(CodecName(static_cast<Codec>(b & kCodecMask)));
  if (b & kGroupedBit) s += "+group";
  return s;
}

std::string CodecChoice::ToString() const {
  std::string s(CodecName(codec));
  if (codec == Codec::kZstd) s += ":" + std::to_string(level ? level : kDefaultZstdLevel);
  if (group && codec != Codec::kNone) s += "+group";
  return s;
}

Result<CodecChoice> ParseCodecChoice(std::string_view text) {
  const std::string original = PrintableForError(text);  // one line, whatever was typed
  auto bad = [&](const std::string& why) {
    return Status::InvalidArgument("--codec '" + original + "': " + why +
                                   " (expected none, lz4, zstd or zstd:LEVEL, optionally "
                                   "followed by +group)");
  };
  CodecChoice c;
  if (text.ends_with("+group")) {
    c.group = true;
    text.remove_suffix(6);
  }
  std::string_view level;
  const size_t colon = text.find(':');
  if (colon != std::string_view::npos) {
    level = text.substr(colon + 1);
    text = text.substr(0, colon);
  }
  if (text == "none") {
    c.codec = Codec::kNone;
  } else if (text == "lz4") {
    c.codec = Codec::kLz4;
  } else if (text == "zstd") {
    c.codec = Codec::kZstd;
    c.level = kDefaultZstdLevel;
  } else {
    return bad("unknown codec '" + PrintableForError(text) + "'");
  }
  if (colon != std::string_view::npos) {
    if (c.codec != Codec::kZstd) return bad("only zstd takes a level");
    int v = 0;
    const auto [p, ec] = std::from_chars(level.data(), level.data() + level.size(), v);
    if (ec != std::errc() || p != level.data() + level.size() || v < 1 || v > ZSTD_maxCLevel()) {
      return bad("the zstd level must be 1.." + std::to_string(ZSTD_maxCLevel()));
    }
    c.level = v;
  }
  if (c.group && c.codec == Codec::kNone) return bad("+group needs a compressing codec");
  return c;
}

uint64_t BundleChecksum(std::span<const uint8_t> stored) {
  return XXH3_64bits(stored.data(), stored.size());
}

uint8_t EncodeBundle(std::span<const uint8_t> raw, const BundleLayout& layout,
                     const CodecChoice& choice, std::vector<uint8_t>* stored) {
  auto store_raw = [&] {
    stored->assign(raw.begin(), raw.end());
    return uint8_t{0};
  };
  if (choice.codec == Codec::kNone || raw.size() > static_cast<size_t>(INT_MAX)) {
    return store_raw();
  }
  const bool group = choice.group && layout.groupable();
  std::vector<uint8_t> grouped;
  const uint8_t* src = raw.data();
  if (group) {
    grouped.resize(raw.size());
    ApplyGrouping(raw.data(), grouped.data(), layout, /*inverse=*/false);
    src = grouped.data();
  }
  size_t n = 0;
  if (choice.codec == Codec::kLz4) {
    stored->resize(static_cast<size_t>(LZ4_compressBound(static_cast<int>(raw.size()))));
    const int r = LZ4_compress_default(
        reinterpret_cast<const char*>(src), reinterpret_cast<char*>(stored->data()),
        static_cast<int>(raw.size()), static_cast<int>(stored->size()));
    if (r <= 0) return store_raw();
    n = static_cast<size_t>(r);
  } else {
    stored->resize(ZSTD_compressBound(raw.size()));
    const size_t r = ZSTD_compress(stored->data(), stored->size(), src, raw.size(),
                                   choice.level ? choice.level : kDefaultZstdLevel);
    if (ZSTD_isError(r)) return store_raw();
    n = r;
  }
  if (n >= raw.size()) return store_raw();  // compression did not pay: keep it plain
  stored->resize(n);
  return static_cast<uint8_t>(static_cast<uint8_t>(choice.codec) | (group ? kGroupedBit : 0));
}

Status DecodeBundle(uint8_t codec_byte, std::span<const uint8_t> stored, const BundleLayout& layout,
                    bool verify, uint64_t checksum, std::span<uint8_t> raw) {
  if (!IsKnownCodecByte(codec_byte)) {
    return Status::Corruption("unknown codec byte " + std::to_string(codec_byte));
  }
  if (raw.size() != layout.raw_bytes()) {
    return Status::Corruption("bundle is " + std::to_string(layout.raw_bytes()) +
                              " bytes raw, not " + std::to_string(raw.size()));
  }
  if (verify) {
    const uint64_t h = BundleChecksum(stored);
    if (h != checksum) {
      char msg[128];
      std::snprintf(msg, sizeof msg, "checksum mismatch (XXH3 %016llx, index says %016llx)",
                    static_cast<unsigned long long>(h), static_cast<unsigned long long>(checksum));
      return Status::Corruption(msg);
    }
  }
  const auto codec = static_cast<Codec>(codec_byte & kCodecMask);
  const bool grouped = codec_byte & kGroupedBit;
  if (codec == Codec::kNone) {
    if (stored.size() != raw.size()) {
      return Status::Corruption("uncompressed bundle stored as " + std::to_string(stored.size()) +
                                " bytes, expected " + std::to_string(raw.size()));
    }
    if (stored.data() != raw.data()) std::memcpy(raw.data(), stored.data(), raw.size());
    return Status::Ok();
  }
  thread_local std::vector<uint8_t> scratch;
  uint8_t* dst = raw.data();
  if (grouped) {
    scratch.resize(raw.size());
    dst = scratch.data();
  }
  size_t got = 0;
  if (codec == Codec::kLz4) {
    if (stored.size() > static_cast<size_t>(INT_MAX) || raw.size() > static_cast<size_t>(INT_MAX)) {
      return Status::Corruption("lz4 bundle larger than 2 GiB");
    }
    const int r = LZ4_decompress_safe(reinterpret_cast<const char*>(stored.data()),
                                      reinterpret_cast<char*>(dst), static_cast<int>(stored.size()),
                                      static_cast<int>(raw.size()));
    if (r < 0) return Status::Corruption("lz4 data is malformed");
    got = static_cast<size_t>(r);
  } else {
    const size_t r = ZSTD_decompress(dst, raw.size(), stored.data(), stored.size());
    if (ZSTD_isError(r)) {
      return Status::Corruption(std::string("zstd data is malformed: ") + ZSTD_getErrorName(r));
    }
    got = r;
  }
  if (got != raw.size()) {
    return Status::Corruption("bundle decompressed to " + std::to_string(got) +
                              " bytes, expected " + std::to_string(raw.size()));
  }
  if (grouped) ApplyGrouping(scratch.data(), raw.data(), layout, /*inverse=*/true);
  return Status::Ok();
}

}  // namespace strata::storage

// The index of a packed GGUF (written by `strata pack`, format in docs/FORMAT.md):
// for every packed MoE layer, where each expert bundle sits in the layer's pack blob
// (tensor "blk.N.ffn_exps.strata_pack"), how it is stored, its sizes and checksum, and
// the three expert stacks it replaces (names, types, shapes).
//
// ReadGguf() parses and validates the index whenever strata.pack.version is present,
// and shows the replaced stacks as ordinary tensors with `packed` set, so planning,
// model loading and inspect see the original model; their bytes must be read through
// the index (ExpertCache, ModelFile), never at file_offset. Validation: known version
// and codecs, array lengths, 4 KiB-aligned bundles inside their blob, raw sizes equal
// to the stacks' expert sizes. Immutable after parsing; thread-safe.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "storage/bundle_codec.h"
#include "storage/ggml_types.h"
#include "util/status.h"

namespace strata::storage {

class GgufFile;
struct TensorInfo;

inline constexpr uint32_t kPackVersion = 1;
inline constexpr uint64_t kPackAlignment = 4096;
inline constexpr std::string_view kPackVersionKey = "strata.pack.version";
inline constexpr std::string_view kPackAlignmentKey = "strata.pack.bundle_alignment";
inline constexpr std::string_view kPackLayersKey = "strata.pack.layers";
inline constexpr std::string_view kPackSourceKey = "strata.pack.source";
// Per layer N: "strata.pack.blk.N." + one of these.
inline constexpr std::array<std::string_view, 9> kPackLayerFields = {
    "stacks", "types", "shapes", "codec_label", "codec", "offset", "stored", "raw", "xxh3"};

std::string PackLayerKey(uint32_t layer, std::string_view field);
std::string PackBlobName(uint32_t layer);  // "blk.N.ffn_exps.strata_pack"
// A pack blob's bytes are the replaced stacks' bytes: count and load those instead.
bool IsPackBlobName(std::string_view name);

struct PackEntry {
  uint64_t offset = 0;  // absolute file offset, a multiple of kPackAlignment
  uint64_t stored = 0;  // bytes on disk (the read covers them, aligned up)
  uint8_t codec = 0;    // codec byte (bundle_codec.h)
  uint64_t xxh3 = 0;    // of the stored bytes
};

struct PackedLayer {
  uint32_t layer = 0;
  std::array<std::string, 3> stacks;  // gate, up, down tensor names
  std::array<GgmlType, 3> types{};
  std::array<std::array<uint64_t, 3>, 3> shapes{};
  BundleLayout layout;       // the raw bundle: gate | up | down of one expert
  std::string codec_label;   // what the packer was asked for, e.g. "zstd:3"
  uint64_t blob_offset = 0;  // absolute
  uint64_t blob_bytes = 0;
  std::vector<PackEntry> entries;      // one per expert
  uint64_t max_compressed_stored = 0;  // largest stored size among compressed bundles

  uint32_t n_expert() const { return static_cast<uint32_t>(entries.size()); }
  uint64_t raw_bytes() const { return layout.raw_bytes(); }
  uint64_t stored_bytes() const;
};

struct PackIndex {
  uint32_t version = 0;
  std::string source;
  std::vector<PackedLayer> layers;  // in the order of strata.pack.layers

  const PackedLayer* FindLayer(uint32_t layer) const;
  // The layer and role (0 gate, 1 up, 2 down) of a replaced stack, or {nullptr, -1}.
  std::pair<const PackedLayer*, int> FindStack(std::string_view name) const;
};

// The group width for `type` (2 for F16/BF16, 4 for F32, 1 otherwise).
uint32_t GroupWidth(GgmlType type);

// Parses the index of `file` (its metadata and blob tensors) and returns it with the
// TensorInfos of the replaced stacks. Errors name the file and the key.
Result<std::pair<PackIndex, std::vector<TensorInfo>>> ParsePackIndex(const GgufFile& file);

}  // namespace strata::storage

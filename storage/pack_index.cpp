#include "storage/pack_index.h"

#include "storage/gguf.h"
#include "util/checked_math.h"

namespace strata::storage {
namespace {

constexpr std::array<std::string_view, 3> kRoleNames = {"gate", "up", "down"};

class IndexParser {
 public:
  explicit IndexParser(const GgufFile& file) : file_(file) {}

  Result<std::pair<PackIndex, std::vector<TensorInfo>>> Parse() {
    PackIndex idx;
    STRATA_ASSIGN_OR_RETURN(uint64_t version, file_.GetUnsigned(kPackVersionKey));
    if (version != kPackVersion) {
      return Status::Unsupported(file_.path() + ": packed with format version " +
                                 std::to_string(version) + "; this strata reads version " +
                                 std::to_string(kPackVersion) + " (re-pack the original GGUF)");
    }
    idx.version = static_cast<uint32_t>(version);
    idx.source = file_.GetStringOr(std::string(kPackSourceKey), "");
    STRATA_ASSIGN_OR_RETURN(uint64_t align, file_.GetUnsigned(kPackAlignmentKey));
    if (align != kPackAlignment) {
      return Fail(std::string(kPackAlignmentKey) + " is " + std::to_string(align) + ", not " +
                  std::to_string(kPackAlignment));
    }
    STRATA_ASSIGN_OR_RETURN(std::vector<uint64_t> layers, Unsigneds(std::string(kPackLayersKey)));
    std::vector<TensorInfo> stacks;
    for (const uint64_t layer : layers) {
      if (layer > 1'000'000)
        return Fail(std::string(kPackLayersKey) + " lists layer " + std::to_string(layer));
      if (idx.FindLayer(static_cast<uint32_t>(layer))) {
        return Fail(std::string(kPackLayersKey) + " lists layer " + std::to_string(layer) +
                    " twice");
      }
      STRATA_ASSIGN_OR_RETURN(PackedLayer L, ParseLayer(static_cast<uint32_t>(layer), &stacks));
      idx.layers.push_back(std::move(L));
    }
    return std::pair{std::move(idx), std::move(stacks)};
  }

 private:
  Status Fail(const std::string& msg) const {
    return Status::Corruption(file_.path() + ": pack index: " + msg);
  }

  Result<const GgufValue*> Array(const std::string& key) const {
    const GgufValue* v = file_.Find(key);
    if (!v) return Fail("missing key '" + key + "'");
    if (v->type() != GgufType::kArray) return Fail("'" + key + "' is not an array");
    return v;
  }

  Result<std::vector<uint64_t>> Unsigneds(const std::string& key) const {
    STRATA_ASSIGN_OR_RETURN(const GgufValue* v, Array(key));
    std::vector<uint64_t> out;
    out.reserve(v->items().size());
    for (const GgufValue& item : v->items()) {
      const auto u = item.AsUnsigned();
      if (!u) return Fail("'" + key + "' holds a value that is not an unsigned integer");
      out.push_back(*u);
    }
    return out;
  }

  Result<std::vector<std::string>> Strings(const std::string& key) const {
    STRATA_ASSIGN_OR_RETURN(const GgufValue* v, Array(key));
    std::vector<std::string> out;
    for (const GgufValue& item : v->items()) {
      const std::string* s = item.AsString();
      if (!s) return Fail("'" + key + "' holds a value that is not a string");
      out.push_back(*s);
    }
    return out;
  }

  Result<PackedLayer> ParseLayer(uint32_t layer, std::vector<TensorInfo>* stacks) const {
    PackedLayer L;
    L.layer = layer;
    auto key = [&](std::string_view field) { return PackLayerKey(layer, field); };
    const TensorInfo* blob = file_.FindTensor(PackBlobName(layer));
    if (!blob)
      return Fail("layer " + std::to_string(layer) + " has no '" + PackBlobName(layer) +
                  "' tensor");
    if (blob->file_offset % kPackAlignment != 0) {
      return Fail("'" + blob->name + "' starts at " + std::to_string(blob->file_offset) +
                  ", not a multiple of " + std::to_string(kPackAlignment));
    }
    L.blob_offset = blob->file_offset;
    L.blob_bytes = blob->bytes;

    STRATA_ASSIGN_OR_RETURN(std::vector<std::string> names, Strings(key("stacks")));
    STRATA_ASSIGN_OR_RETURN(std::vector<uint64_t> types, Unsigneds(key("types")));
    STRATA_ASSIGN_OR_RETURN(std::vector<uint64_t> shapes, Unsigneds(key("shapes")));
    if (names.size() != 3 || types.size() != 3 || shapes.size() != 9) {
      return Fail("'" + key("stacks") + "', '" + key("types") + "' and '" + key("shapes") +
                  "' must hold 3, 3 and 9 values");
    }
    L.codec_label = file_.GetStringOr(key("codec_label"), "");
    uint64_t n_expert = 0;
    for (int r = 0; r < 3; ++r) {
      const std::string where = "layer " + std::to_string(layer) + " " +
                                std::string(kRoleNames[r]) + " stack '" + names[r] + "'";
      auto info =
          types[r] <= UINT32_MAX ? FindGgmlType(static_cast<uint32_t>(types[r])) : std::nullopt;
      if (!info) return Fail(where + ": unknown GGML type " + std::to_string(types[r]));
      if (names[r].empty() || names[r].size() > 255 || file_.FindTensor(names[r])) {
        return Fail(where + ": the name is empty, too long or also a real tensor");
      }
      TensorInfo t;
      t.name = names[r];
      t.type = info->type;
      t.n_dims = 3;
      for (int d = 0; d < 3; ++d) t.ne[d] = shapes[static_cast<size_t>(r * 3 + d)];
      auto row = RowBytes(t.type, t.ne[0]);
      uint64_t bytes = row.value_or(0);
      if (!row || t.ne[1] == 0 || t.ne[2] == 0 || !CheckedMul(bytes, t.ne[1], &bytes) ||
          !CheckedMul(bytes, t.ne[2], &bytes)) {
        return Fail(where + ": bad shape " + t.ShapeString());
      }
      if (n_expert && n_expert != t.ne[2]) {
        return Fail(where + " has " + std::to_string(t.ne[2]) + " experts, its siblings " +
                    std::to_string(n_expert));
      }
      n_expert = t.ne[2];
      t.bytes = bytes;
      t.file_offset = blob->file_offset;
      t.relative_offset = blob->relative_offset;
      t.packed = true;
      L.stacks[r] = t.name;
      L.types[r] = t.type;
      L.shapes[r] = {t.ne[0], t.ne[1], t.ne[2]};
      L.layout.bytes[r] = t.expert_bytes();
      L.layout.group_width[r] = GroupWidth(t.type);
      stacks->push_back(std::move(t));
    }

    STRATA_ASSIGN_OR_RETURN(std::vector<uint64_t> codec, Unsigneds(key("codec")));
    STRATA_ASSIGN_OR_RETURN(std::vector<uint64_t> offset, Unsigneds(key("offset")));
    STRATA_ASSIGN_OR_RETURN(std::vector<uint64_t> stored, Unsigneds(key("stored")));
    STRATA_ASSIGN_OR_RETURN(std::vector<uint64_t> raw, Unsigneds(key("raw")));
    STRATA_ASSIGN_OR_RETURN(std::vector<uint64_t> xxh3, Unsigneds(key("xxh3")));
    for (const auto* v : {&codec, &offset, &stored, &raw, &xxh3}) {
      if (v->size() != n_expert) {
        return Fail("layer " + std::to_string(layer) + ": an index array has " +
                    std::to_string(v->size()) + " entries for " + std::to_string(n_expert) +
                    " experts");
      }
    }
    L.entries.resize(n_expert);
    for (uint64_t e = 0; e < n_expert; ++e) {
      const std::string where = "layer " + std::to_string(layer) + " expert " + std::to_string(e);
      PackEntry& p = L.entries[e];
      if (codec[e] > 0xFF || !IsKnownCodecByte(static_cast<uint8_t>(codec[e]))) {
        return Status::Unsupported(file_.path() + ": pack index: " + where + ": unknown codec " +
                                   std::to_string(codec[e]) + " (strata reads none, lz4, zstd)");
      }
      p.codec = static_cast<uint8_t>(codec[e]);
      if (raw[e] != L.raw_bytes()) {
        return Fail(where + ": raw size " + std::to_string(raw[e]) + ", but its stacks make " +
                    std::to_string(L.raw_bytes()));
      }
      if (p.codec == 0 && stored[e] != raw[e]) {
        return Fail(where + ": stored uncompressed as " + std::to_string(stored[e]) +
                    " bytes, raw is " + std::to_string(raw[e]));
      }
      uint64_t end = 0;
      if (offset[e] % kPackAlignment != 0 || stored[e] == 0 ||
          !CheckedAlignUp(stored[e], kPackAlignment, &end) || !CheckedAdd(end, offset[e], &end) ||
          end > L.blob_bytes) {
        return Fail(where + ": bundle [" + std::to_string(offset[e]) + ", +" +
                    std::to_string(stored[e]) + ") is unaligned or outside its " +
                    std::to_string(L.blob_bytes) + "-byte blob");
      }
      p.offset = L.blob_offset + offset[e];
      p.stored = stored[e];
      p.xxh3 = xxh3[e];
      if (p.codec != 0) L.max_compressed_stored = std::max(L.max_compressed_stored, p.stored);
    }
    return L;
  }

  const GgufFile& file_;
};

}  // namespace

std::string PackLayerKey(uint32_t layer, std::string_view field) {
  return "strata.pack.blk." + std::to_string(layer) + "." + std::string(field);
}

std::string PackBlobName(uint32_t layer) {
  return "blk." + std::to_string(layer) + ".ffn_exps.strata_pack";
}

bool IsPackBlobName(std::string_view name) {
  return name.starts_with("blk.") && name.ends_with(".ffn_exps.strata_pack");
}

uint64_t PackedLayer::stored_bytes() const {
  uint64_t n = 0;
  for (const PackEntry& e : entries) n += e.stored;
  return n;
}

const PackedLayer* PackIndex::FindLayer(uint32_t layer) const {
  for (const PackedLayer& L : layers) {
    if (L.layer == layer) return &L;
  }
  return nullptr;
}

std::pair<const PackedLayer*, int> PackIndex::FindStack(std::string_view name) const {
  for (const PackedLayer& L : layers) {
    for (int r = 0; r < 3; ++r) {
      if (L.stacks[r] == name) return {&L, r};
    }
  }
  return {nullptr, -1};
}

uint32_t GroupWidth(GgmlType type) {
  switch (type) {
    case GgmlType::kF16:
    case GgmlType::kBF16:
      return 2;
    case GgmlType::kF32:
      return 4;
    default:
      return 1;
  }
}

Result<std::pair<PackIndex, std::vector<TensorInfo>>> ParsePackIndex(const GgufFile& file) {
  return IndexParser(file).Parse();
}

}  // namespace strata::storage

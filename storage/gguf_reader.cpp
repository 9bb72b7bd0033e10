// GGUF v2/v3 header parser and validator. Design goal: no input, however hostile, makes
// it read out of bounds, allocate more than a small multiple of the file size, loop
// for long, or crash; every rejection says where and why in one line.
#include <algorithm>
#include <cstring>
#include <limits>

#include "storage/gguf.h"
#include "util/checked_math.h"
#include "util/utf8.h"

namespace strata::storage {

std::string TensorInfo::ShapeString() const {
  std::string s = "[";
  for (uint32_t d = 0; d < n_dims; ++d) {
    if (d) s += ", ";
    s += std::to_string(ne[d]);
  }
  return s + "]";
}

const GgufValue* GgufFile::Find(std::string_view key) const {
  auto it = metadata_index_.find(std::string(key));
  return it == metadata_index_.end() ? nullptr : &metadata_[it->second].second;
}

Result<uint64_t> GgufFile::GetUnsigned(std::string_view key) const {
  const GgufValue* v = Find(key);
  if (!v) return Status::NotFound(path_ + ": missing metadata key '" + std::string(key) + "'");
  auto u = v->AsUnsigned();
  if (!u) {
    return Status::Corruption(path_ + ": metadata key '" + std::string(key) +
                              "' should be a non-negative integer, found " +
                              std::string(GgufTypeName(v->type())) + " " + v->ToDisplayString());
  }
  return *u;
}

uint64_t GgufFile::GetUnsignedOr(std::string_view key, uint64_t fallback) const {
  const GgufValue* v = Find(key);
  if (!v) return fallback;
  return v->AsUnsigned().value_or(fallback);
}

Result<double> GgufFile::GetFloat(std::string_view key) const {
  const GgufValue* v = Find(key);
  if (!v) return Status::NotFound(path_ + ": missing metadata key '" + std::string(key) + "'");
  if (auto f = v->AsFloat()) return *f;
  if (auto i = v->AsSigned()) return static_cast<double>(*i);
  return Status::Corruption(path_ + ": metadata key '" + std::string(key) +
                            "' should be a number, found " + std::string(GgufTypeName(v->type())));
}

Result<std::string> GgufFile::GetString(std::string_view key) const {
  const GgufValue* v = Find(key);
  if (!v) return Status::NotFound(path_ + ": missing metadata key '" + std::string(key) + "'");
  if (const std::string* s = v->AsString()) return *s;
  return Status::Corruption(path_ + ": metadata key '" + std::string(key) +
                            "' should be a string, found " + std::string(GgufTypeName(v->type())));
}

std::string GgufFile::GetStringOr(std::string_view key, std::string fallback) const {
  const GgufValue* v = Find(key);
  if (v && v->AsString()) return *v->AsString();
  return fallback;
}

bool GgufFile::GetBoolOr(std::string_view key, bool fallback) const {
  const GgufValue* v = Find(key);
  if (!v) return fallback;
  return v->AsBool().value_or(fallback);
}

const TensorInfo* GgufFile::FindTensor(std::string_view name) const {
  auto it = tensor_index_.find(std::string(name));
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

namespace {

constexpr uint64_t kMaxKeyBytes = 65535;
constexpr uint64_t kMaxTensorNameBytes = 255;
constexpr uint64_t kMaxAlignment = uint64_t{1} << 30;
constexpr int kMaxArrayNesting = 4;
// Real vocabularies and merge lists stay under a million entries; a larger count is
// a hostile file trying to make us allocate (each parsed value costs ~80 bytes).
constexpr uint64_t kMaxArrayElements = uint64_t{1} << 22;
// The longest real string value is a chat template of some KiB; a claimed length of
// gigabytes in a huge file would otherwise be allocated before it is read (found by
// fuzz_pack_index).
constexpr uint64_t kMaxStringValueBytes = uint64_t{64} << 20;
// Real files have hundreds of keys and a few thousand tensors; counts are checked
// against the bytes left too, but in a file of hundreds of GB that alone would still
// let a header claim billions (found by fuzz_pack_index).
constexpr uint64_t kMaxMetadataCount = uint64_t{1} << 20;
constexpr uint64_t kMaxTensorCount = uint64_t{1} << 20;
constexpr size_t kReadBufferBytes = 1 << 20;

// Sequential reads over a RandomAccessFile through a buffer, tracking the absolute
// offset so every error can say where it happened.
class Cursor {
 public:
  explicit Cursor(const RandomAccessFile& file) : file_(file), size_(file.size()) {}

  uint64_t offset() const { return offset_; }
  uint64_t remaining() const { return size_ - offset_; }

  Status Read(void* dst, uint64_t n, const std::string& what) {
    if (n > remaining()) {
      return Status::Corruption(file_.path() + ": truncated: " + what + " needs " +
                                std::to_string(n) + " bytes at offset " + std::to_string(offset_) +
                                " but the file ends at " + std::to_string(size_));
    }
    auto* out = static_cast<char*>(dst);
    while (n > 0) {
      if (buf_pos_ == buf_.size()) STRATA_RETURN_IF_ERROR(Refill());
      const size_t take = static_cast<size_t>(std::min<uint64_t>(n, buf_.size() - buf_pos_));
      std::memcpy(out, buf_.data() + buf_pos_, take);
      out += take;
      buf_pos_ += take;
      offset_ += take;
      n -= take;
    }
    return Status::Ok();
  }

  template <typename T>
  Status ReadPod(T* value, const std::string& what) {
    return Read(value, sizeof(T), what);
  }

 private:
  Status Refill() {
    const size_t want = static_cast<size_t>(std::min<uint64_t>(kReadBufferBytes, remaining()));
    buf_.resize(want);
    buf_pos_ = 0;
    return file_.ReadExact(offset_, want, buf_.data());
  }

  const RandomAccessFile& file_;
  const uint64_t size_;
  uint64_t offset_ = 0;
  std::string buf_;
  size_t buf_pos_ = 0;
};

}  // namespace

// Parses one file; a class so the many small steps can share the cursor and the path.
class GgufParser {
 public:
  explicit GgufParser(const RandomAccessFile& file) : file_(file), cur_(file) {}

  Result<GgufFile> Parse() {
    GgufFile out;
    out.path_ = file_.path();
    out.file_size_ = file_.size();

    uint32_t magic = 0;
    STRATA_RETURN_IF_ERROR(cur_.ReadPod(&magic, "the magic"));
    if (magic != kGgufMagic) {
      return Fail("not a GGUF file (magic " + Hex(magic) + ", expected \"GGUF\")");
    }
    STRATA_RETURN_IF_ERROR(cur_.ReadPod(&out.version_, "the version"));
    if (out.version_ == 1) return Unsupported("GGUF version 1 is obsolete; re-convert the model");
    if (out.version_ != 2 && out.version_ != 3) {
      return Unsupported("unknown GGUF version " + std::to_string(out.version_) +
                         " (strata reads versions 2 and 3)");
    }
    uint64_t n_tensors = 0, n_kv = 0;
    STRATA_RETURN_IF_ERROR(cur_.ReadPod(&n_tensors, "the tensor count"));
    STRATA_RETURN_IF_ERROR(cur_.ReadPod(&n_kv, "the metadata count"));
    // Smallest encodings: a KV is key length (8) + 1 key byte + type (4) + 1 value byte;
    // a tensor info is name length (8) + 1 + n_dims (4) + ne0 (8) + type (4) + offset (8).
    if (n_kv > cur_.remaining() / 14) {
      return Fail("metadata count " + std::to_string(n_kv) + " cannot fit in the " +
                  std::to_string(cur_.remaining()) + " bytes left");
    }
    if (n_kv > kMaxMetadataCount) {
      return Fail("metadata count " + std::to_string(n_kv) + " exceeds the limit of " +
                  std::to_string(kMaxMetadataCount));
    }
    if (n_tensors > kMaxTensorCount) {
      return Fail("tensor count " + std::to_string(n_tensors) + " exceeds the limit of " +
                  std::to_string(kMaxTensorCount));
    }
    if (n_tensors > cur_.remaining() / 33) {
      return Fail("tensor count " + std::to_string(n_tensors) + " cannot fit in the " +
                  std::to_string(cur_.remaining()) + " bytes left");
    }

    out.metadata_.reserve(static_cast<size_t>(n_kv));
    for (uint64_t i = 0; i < n_kv; ++i) {
      const std::string where = "metadata " + std::to_string(i);
      std::string key;
      STRATA_RETURN_IF_ERROR(ReadString(&key, kMaxKeyBytes, where + " key"));
      if (key.empty()) return Fail(where + ": empty key");
      if (!IsValidUtf8(key))
        return Fail(where + ": key is not valid UTF-8: '" + PrintableForError(key) + "'");
      const std::string key_where = "metadata key '" + key + "'";
      if (out.metadata_index_.count(key)) return Fail("duplicate " + key_where);
      GgufValue value;
      STRATA_RETURN_IF_ERROR(ReadValue(&value, key_where, 0));
      out.metadata_index_.emplace(key, out.metadata_.size());
      out.metadata_.emplace_back(std::move(key), std::move(value));
    }

    if (const GgufValue* align = out.Find("general.alignment")) {
      auto a = align->AsUnsigned();
      if (!a || !IsPowerOfTwo(*a) || *a > kMaxAlignment) {
        return Fail("general.alignment must be a power of two up to 2^30, found " +
                    std::string(GgufTypeName(align->type())) + " " + align->ToDisplayString());
      }
      out.alignment_ = *a;
    }

    out.tensors_.reserve(static_cast<size_t>(n_tensors));
    for (uint64_t i = 0; i < n_tensors; ++i) {
      TensorInfo info;
      STRATA_RETURN_IF_ERROR(ReadTensorInfo(&info, i));
      if (out.tensor_index_.count(info.name)) {
        return Fail("duplicate tensor name '" + info.name + "'");
      }
      out.tensor_index_.emplace(info.name, out.tensors_.size());
      out.tensors_.push_back(std::move(info));
    }

    if (!CheckedAlignUp(cur_.offset(), out.alignment_, &out.data_offset_)) {
      return Fail("data section offset overflows");
    }
    if (!out.tensors_.empty() && out.data_offset_ > out.file_size_) {
      return Fail("truncated: the data section would start at " + std::to_string(out.data_offset_) +
                  " but the file ends at " + std::to_string(out.file_size_));
    }
    STRATA_RETURN_IF_ERROR(PlaceTensors(&out));
    if (out.Find(kPackVersionKey)) {
      STRATA_ASSIGN_OR_RETURN(auto parsed, ParsePackIndex(out));
      for (TensorInfo& t : parsed.second) {
        if (out.tensor_index_.count(t.name)) {
          return Fail("pack index: stack '" + t.name + "' is listed twice");
        }
        out.tensor_index_.emplace(t.name, out.tensors_.size());
        out.tensors_.push_back(std::move(t));
      }
      out.pack_ = std::make_shared<const PackIndex>(std::move(parsed.first));
    }
    out.shards_ = {GgufShard{out.path_, out.file_size_, 0, out.tensors_.size()}};
    return out;
  }

 private:
  Status Fail(const std::string& msg) const {
    return Status::Corruption(file_.path() + ": " + msg);
  }
  Status Unsupported(const std::string& msg) const {
    return Status::Unsupported(file_.path() + ": " + msg);
  }
  static std::string Hex(uint64_t v) {
    char buf[24];
    std::snprintf(buf, sizeof(buf), "0x%llx", static_cast<unsigned long long>(v));
    return buf;
  }

  Status ReadString(std::string* out, uint64_t max_bytes, const std::string& what) {
    uint64_t len = 0;
    const uint64_t at = cur_.offset();
    STRATA_RETURN_IF_ERROR(cur_.ReadPod(&len, what + " length"));
    if (len > cur_.remaining()) {
      return Fail(what + ": string length " + std::to_string(len) + " at offset " +
                  std::to_string(at) + " exceeds the " + std::to_string(cur_.remaining()) +
                  " bytes left in the file");
    }
    if (len > max_bytes) {
      return Fail(what + ": string length " + std::to_string(len) + " exceeds the limit of " +
                  std::to_string(max_bytes));
    }
    out->resize(static_cast<size_t>(len));
    return cur_.Read(out->data(), len, what);
  }

  Status ReadType(GgufType* type, const std::string& what) {
    uint32_t raw = 0;
    const uint64_t at = cur_.offset();
    STRATA_RETURN_IF_ERROR(cur_.ReadPod(&raw, what + " type"));
    if (raw >= kGgufTypeCount) {
      return Fail(what + ": unknown value type " + std::to_string(raw) + " at offset " +
                  std::to_string(at));
    }
    *type = static_cast<GgufType>(raw);
    return Status::Ok();
  }

  Status ReadValue(GgufValue* out, const std::string& what, int depth) {
    GgufType type;
    STRATA_RETURN_IF_ERROR(ReadType(&type, what));
    return ReadValueOfType(type, out, what, depth);
  }

  Status ReadValueOfType(GgufType type, GgufValue* out, const std::string& what, int depth) {
    switch (type) {
      case GgufType::kU8:
        return ReadUnsigned<uint8_t>(type, out, what);
      case GgufType::kU16:
        return ReadUnsigned<uint16_t>(type, out, what);
      case GgufType::kU32:
        return ReadUnsigned<uint32_t>(type, out, what);
      case GgufType::kU64:
        return ReadUnsigned<uint64_t>(type, out, what);
      case GgufType::kI8:
        return ReadSigned<int8_t>(type, out, what);
      case GgufType::kI16:
        return ReadSigned<int16_t>(type, out, what);
      case GgufType::kI32:
        return ReadSigned<int32_t>(type, out, what);
      case GgufType::kI64:
        return ReadSigned<int64_t>(type, out, what);
      case GgufType::kF32: {
        float f;
        STRATA_RETURN_IF_ERROR(cur_.ReadPod(&f, what));
        *out = GgufValue::F32(f);
        return Status::Ok();
      }
      case GgufType::kF64: {
        double f;
        STRATA_RETURN_IF_ERROR(cur_.ReadPod(&f, what));
        *out = GgufValue::F64(f);
        return Status::Ok();
      }
      case GgufType::kBool: {
        uint8_t b;
        const uint64_t at = cur_.offset();
        STRATA_RETURN_IF_ERROR(cur_.ReadPod(&b, what));
        if (b > 1) {
          return Fail(what + ": bool byte " + std::to_string(b) + " at offset " +
                      std::to_string(at) + " is neither 0 nor 1");
        }
        *out = GgufValue::Bool(b != 0);
        return Status::Ok();
      }
      case GgufType::kString: {
        std::string s;
        STRATA_RETURN_IF_ERROR(ReadString(&s, kMaxStringValueBytes, what));
        *out = GgufValue::String(std::move(s));
        return Status::Ok();
      }
      case GgufType::kArray:
        return ReadArray(out, what, depth);
    }
    return Fail(what + ": unknown value type");
  }

  template <typename T>
  Status ReadUnsigned(GgufType type, GgufValue* out, const std::string& what) {
    T v;
    STRATA_RETURN_IF_ERROR(cur_.ReadPod(&v, what));
    *out = GgufValue::Unsigned(type, v);
    return Status::Ok();
  }
  template <typename T>
  Status ReadSigned(GgufType type, GgufValue* out, const std::string& what) {
    T v;
    STRATA_RETURN_IF_ERROR(cur_.ReadPod(&v, what));
    *out = GgufValue::Signed(type, v);
    return Status::Ok();
  }

  Status ReadArray(GgufValue* out, const std::string& what, int depth) {
    if (depth >= kMaxArrayNesting) {
      return Fail(what + ": arrays nested deeper than " + std::to_string(kMaxArrayNesting));
    }
    GgufType elem;
    STRATA_RETURN_IF_ERROR(ReadType(&elem, what + " array element"));
    uint64_t count = 0;
    const uint64_t at = cur_.offset();
    STRATA_RETURN_IF_ERROR(cur_.ReadPod(&count, what + " array length"));
    // Every element takes at least this many bytes, so a count the rest of the file
    // cannot hold is rejected before anything is allocated.
    const uint64_t min_elem_bytes = ScalarBytes(elem)           ? ScalarBytes(elem)
                                    : elem == GgufType::kString ? 8
                                                                : 12;
    if (count > cur_.remaining() / min_elem_bytes) {
      return Fail(what + ": array length " + std::to_string(count) + " at offset " +
                  std::to_string(at) + " cannot fit in the " + std::to_string(cur_.remaining()) +
                  " bytes left");
    }
    if (count > kMaxArrayElements) {
      return Fail(what + ": array length " + std::to_string(count) + " exceeds the limit of " +
                  std::to_string(kMaxArrayElements));
    }
    std::vector<GgufValue> items(static_cast<size_t>(count));
    for (uint64_t i = 0; i < count; ++i) {
      STRATA_RETURN_IF_ERROR(ReadValueOfType(elem, &items[static_cast<size_t>(i)],
                                             what + "[" + std::to_string(i) + "]", depth + 1));
    }
    *out = GgufValue::Array(elem, std::move(items));
    return Status::Ok();
  }

  Status ReadTensorInfo(TensorInfo* info, uint64_t index) {
    std::string where = "tensor " + std::to_string(index);
    STRATA_RETURN_IF_ERROR(ReadString(&info->name, kMaxTensorNameBytes, where + " name"));
    if (info->name.empty()) return Fail(where + ": empty name");
    if (!IsValidUtf8(info->name)) {
      return Fail(where + ": name is not valid UTF-8: '" + PrintableForError(info->name) + "'");
    }
    where += " '" + info->name + "'";
    STRATA_RETURN_IF_ERROR(cur_.ReadPod(&info->n_dims, where + " n_dims"));
    if (info->n_dims < 1 || info->n_dims > kGgmlMaxDims) {
      return Fail(where + ": n_dims " + std::to_string(info->n_dims) + " is not in 1.." +
                  std::to_string(kGgmlMaxDims));
    }
    for (uint32_t d = 0; d < info->n_dims; ++d) {
      STRATA_RETURN_IF_ERROR(cur_.ReadPod(&info->ne[d], where + " ne"));
      if (info->ne[d] > static_cast<uint64_t>(INT64_MAX)) {
        return Fail(where + ": ne[" + std::to_string(d) + "] = " + std::to_string(info->ne[d]) +
                    " is negative as int64");
      }
    }
    uint32_t raw_type = 0;
    STRATA_RETURN_IF_ERROR(cur_.ReadPod(&raw_type, where + " type"));
    auto type_info = FindGgmlType(raw_type);
    if (!type_info) return Fail(where + ": unknown GGML type " + std::to_string(raw_type));
    info->type = type_info->type;
    STRATA_RETURN_IF_ERROR(cur_.ReadPod(&info->relative_offset, where + " offset"));

    if (info->ne[0] % type_info->block_elems != 0) {
      return Fail(where + ": ne[0] = " + std::to_string(info->ne[0]) +
                  " is not a multiple of the " + std::string(type_info->name) + " block size " +
                  std::to_string(type_info->block_elems));
    }
    uint64_t bytes = (info->ne[0] / type_info->block_elems);
    bool ok = CheckedMul(bytes, type_info->block_bytes, &bytes);
    for (uint32_t d = 1; d < kGgmlMaxDims && ok; ++d) ok = CheckedMul(bytes, info->ne[d], &bytes);
    uint64_t elements = info->ne[0];
    for (uint32_t d = 1; d < kGgmlMaxDims && ok; ++d)
      ok = CheckedMul(elements, info->ne[d], &elements);
    if (!ok || elements > static_cast<uint64_t>(INT64_MAX)) {
      return Fail(where + ": shape " + info->ShapeString() + " overflows");
    }
    info->bytes = bytes;
    return Status::Ok();
  }

  // Checks alignment, bounds and overlap of every tensor's data and fills file_offset.
  Status PlaceTensors(GgufFile* out) const {
    const uint64_t data_bytes =
        out->file_size_ > out->data_offset_ ? out->file_size_ - out->data_offset_ : 0;
    for (TensorInfo& t : out->tensors_) {
      const std::string where = "tensor '" + t.name + "'";
      if (t.relative_offset % out->alignment_ != 0) {
        return Fail(where + ": data offset " + std::to_string(t.relative_offset) +
                    " is not a multiple of the alignment " + std::to_string(out->alignment_));
      }
      uint64_t end;
      if (!CheckedAdd(t.relative_offset, t.bytes, &end) || end > data_bytes) {
        return Fail(where + ": data [" + std::to_string(out->data_offset_ + t.relative_offset) +
                    ", +" + std::to_string(t.bytes) + ") runs past the end of the file (size " +
                    std::to_string(out->file_size_) + ")");
      }
      t.file_offset = out->data_offset_ + t.relative_offset;
    }
    std::vector<const TensorInfo*> by_offset;
    by_offset.reserve(out->tensors_.size());
    for (const TensorInfo& t : out->tensors_) by_offset.push_back(&t);
    std::sort(by_offset.begin(), by_offset.end(), [](const TensorInfo* a, const TensorInfo* b) {
      return a->relative_offset < b->relative_offset;
    });
    for (size_t i = 1; i < by_offset.size(); ++i) {
      const TensorInfo* prev = by_offset[i - 1];
      const TensorInfo* next = by_offset[i];
      if (prev->bytes > 0 && next->bytes > 0 &&
          prev->relative_offset + prev->bytes > next->relative_offset) {
        return Fail("tensors '" + prev->name + "' and '" + next->name +
                    "' overlap at data offset " + std::to_string(next->relative_offset));
      }
    }
    return Status::Ok();
  }

  const RandomAccessFile& file_;
  Cursor cur_;
};

Result<GgufFile> ReadGguf(const RandomAccessFile& file) { return GgufParser(file).Parse(); }

Result<GgufFile> ReadGgufFile(const std::string& path) { return ReadGgufSet(path); }

}  // namespace strata::storage

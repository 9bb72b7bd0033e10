// A parsed, validated GGUF file: its metadata and its tensor catalog.
//
// ReadGguf() is a checker as much as a parser: every count, length, offset and size is
// validated against the file size with overflow-safe arithmetic before it is used, and
// the first problem found comes back as one Status line naming the file and the field
// ("model.gguf: tensor 12 'blk.0.attn_q.weight': data [a, b) past end of file ...").
// Only the header is read: tensor data stays on disk. Parsing is O(header bytes);
// a GgufFile is immutable afterwards and safe to share between threads.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "storage/file.h"
#include "storage/ggml_types.h"
#include "storage/gguf_value.h"
#include "storage/pack_index.h"
#include "util/status.h"

namespace strata::storage {

inline constexpr uint32_t kGgufMagic = 0x46554747;  // "GGUF" little-endian
inline constexpr uint64_t kGgufDefaultAlignment = 32;
inline constexpr uint32_t kGgmlMaxDims = 4;

struct ByteRange {
  uint64_t offset = 0;  // absolute, in the file
  uint64_t bytes = 0;
};

struct TensorInfo {
  std::string name;
  GgmlType type = GgmlType::kF32;
  uint32_t n_dims = 0;
  std::array<uint64_t, kGgmlMaxDims> ne = {1, 1, 1, 1};  // ne[0] is contiguous
  uint64_t relative_offset = 0;  // as stored: from the start of the data section
  uint64_t file_offset = 0;      // absolute
  uint64_t bytes = 0;
  // A stack `strata pack` moved into its layer's pack blob: its bytes are read through
  // GgufFile::pack(), never at file_offset (which is the blob's).
  bool packed = false;

  uint64_t n_elements() const { return ne[0] * ne[1] * ne[2] * ne[3]; }
  uint64_t row_bytes() const { return bytes / (ne[1] * ne[2] * ne[3]); }
  // 3-D expert tensors, ne = [in, out, n_expert]: expert e is one contiguous slice.
  bool is_expert_stack() const { return n_dims == 3; }
  uint64_t expert_bytes() const { return ne[2] ? bytes / ne[2] : 0; }
  // REQUIRES: is_expert_stack() && expert < ne[2].
  ByteRange ExpertRange(uint64_t expert) const {
    return {file_offset + expert * expert_bytes(), expert_bytes()};
  }
  std::string ShapeString() const;  // "[2048, 1408, 64]"
};

class GgufFile {
 public:
  const std::string& path() const { return path_; }
  uint32_t version() const { return version_; }
  uint64_t file_size() const { return file_size_; }
  uint64_t alignment() const { return alignment_; }
  uint64_t data_offset() const { return data_offset_; }  // absolute start of tensor data

  // Metadata in file order.
  const std::vector<std::pair<std::string, GgufValue>>& metadata() const { return metadata_; }
  const GgufValue* Find(std::string_view key) const;

  // Typed getters whose errors name the key and the file. Integers of any width.
  Result<uint64_t> GetUnsigned(std::string_view key) const;
  uint64_t GetUnsignedOr(std::string_view key, uint64_t fallback) const;
  Result<double> GetFloat(std::string_view key) const;
  Result<std::string> GetString(std::string_view key) const;
  std::string GetStringOr(std::string_view key, std::string fallback) const;
  bool GetBoolOr(std::string_view key, bool fallback) const;

  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  const TensorInfo* FindTensor(std::string_view name) const;

  // The pack index of a file written by `strata pack`; null for a plain GGUF.
  const PackIndex* pack() const { return pack_.get(); }

 private:
  friend class GgufParser;

  std::string path_;
  uint32_t version_ = 0;
  uint64_t file_size_ = 0;
  uint64_t alignment_ = kGgufDefaultAlignment;
  uint64_t data_offset_ = 0;
  std::vector<std::pair<std::string, GgufValue>> metadata_;
  std::unordered_map<std::string, size_t> metadata_index_;
  std::vector<TensorInfo> tensors_;
  std::unordered_map<std::string, size_t> tensor_index_;
  std::shared_ptr<const PackIndex> pack_;  // shared: GgufFile copies keep one index
};

// Parses and validates the header of `file`.
Result<GgufFile> ReadGguf(const RandomAccessFile& file);
// Opens `path` and parses it.
Result<GgufFile> ReadGgufFile(const std::string& path);

}  // namespace strata::storage

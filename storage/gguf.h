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
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "storage/file.h"
#include "storage/file_extents.h"
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
  // Absolute in the file; in a split set, in the set's address space (GgufShard::base).
  uint64_t file_offset = 0;
  uint64_t bytes = 0;
  uint32_t shard = 0;            // which file of a split set holds the data (0: the first)
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

// One file of a model. A split set (llama.cpp's gguf-split: PREFIX-00001-of-00004.gguf
// ...) is read as one model whose files sit side by side in one address space: shard i's
// byte k is at base + k, bases 1 MiB aligned and far enough apart that the aligned cover
// of a read never reaches the next file. A plain file is one shard at base 0.
struct GgufShard {
  std::string path;
  uint64_t size = 0;  // bytes in the file
  uint64_t base = 0;  // where its bytes start in the set's address space
  uint64_t tensors = 0;
};
inline constexpr uint64_t kShardBaseAlignment = uint64_t{1} << 20;

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

  // The files of the model (one unless it is a split set), in split.no order.
  const std::vector<GgufShard>& shards() const { return shards_; }
  bool is_split() const { return shards_.size() > 1; }
  // End of the address space: base + size of the last shard.
  uint64_t span() const { return shards_.back().base + shards_.back().size; }

 private:
  friend class GgufParser;
  friend Result<GgufFile> ReadGgufSet(const std::string& path);

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
  std::vector<GgufShard> shards_;
};

// Parses and validates the header of `file` (one file; a shard of a set stays a shard).
Result<GgufFile> ReadGguf(const RandomAccessFile& file);
// Opens `path` and parses it; a shard of a split set opens the whole set (any shard may
// be named). Errors name the file: a missing shard, one of another set, a tensor in two
// shards, a truncated shard.
Result<GgufFile> ReadGgufFile(const std::string& path);
Result<GgufFile> ReadGgufSet(const std::string& path);

// The model's tensor bytes by file_offset, across every shard (a read never spans two).
Result<std::unique_ptr<RandomAccessFile>> OpenGgufData(const GgufFile& gguf, PreadFn read_fn = nullptr);

// The model's files as an AsyncReader or MapFiles() takes them.
std::vector<FileExtent> FileExtentsOf(const GgufFile& gguf);

// llama.cpp's shard file name: PREFIX-00002-of-00005.gguf (numbers from 1).
std::string ShardPath(const std::string& prefix, uint32_t no, uint32_t count);
// The prefix, number (from 1) and count of a shard file name; nullopt if not one.
struct ShardName {
  std::string prefix;
  uint32_t no = 0;
  uint32_t count = 0;
};
std::optional<ShardName> ParseShardPath(const std::string& path);

}  // namespace strata::storage

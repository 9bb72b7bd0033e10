// Split GGUF sets (llama.cpp's gguf-split convention, docs/FORMAT.md "Split sets"):
// every shard is a complete GGUF file carrying split.no (0-based), split.count and
// split.tensors.count; the first holds the model's metadata, and each holds the data of
// the tensors it lists. Shards are named PREFIX-%05d-of-%05d.gguf, numbered from 1.
#include <cstdio>

#include "storage/gguf.h"

namespace strata::storage {
namespace {

constexpr std::string_view kSplitNo = "split.no";
constexpr std::string_view kSplitCount = "split.count";
constexpr std::string_view kSplitTensors = "split.tensors.count";

uint64_t AlignUp(uint64_t v, uint64_t a) { return (v + a - 1) / a * a; }

// Reads of the set's address space, each sent to the shard that holds it.
class ShardedFile final : public RandomAccessFile {
 public:
  ShardedFile(std::vector<GgufShard> shards, std::vector<std::unique_ptr<RandomAccessFile>> files)
      : shards_(std::move(shards)), files_(std::move(files)) {}

  const std::string& path() const override { return files_[0]->path(); }
  uint64_t size() const override { return shards_.back().base + shards_.back().size; }

  Status ReadExact(uint64_t offset, size_t n, void* dst) const override {
    for (size_t i = shards_.size(); i-- > 0;) {
      if (offset >= shards_[i].base) return files_[i]->ReadExact(offset - shards_[i].base, n, dst);
    }
    return Status::Corruption(path() + ": read at " + std::to_string(offset) + " is in no shard");
  }

 private:
  std::vector<GgufShard> shards_;
  std::vector<std::unique_ptr<RandomAccessFile>> files_;
};

}  // namespace

std::string ShardPath(const std::string& prefix, uint32_t no, uint32_t count) {
  char tail[64];
  std::snprintf(tail, sizeof(tail), "-%05u-of-%05u.gguf", no, count);
  return prefix + tail;
}

std::optional<ShardName> ParseShardPath(const std::string& path) {
  // "-00001-of-00004.gguf" is 20 characters.
  constexpr size_t kTail = 20;
  if (path.size() <= kTail) return std::nullopt;
  const std::string tail = path.substr(path.size() - kTail);
  unsigned no = 0, count = 0;
  char end[8] = {};
  if (std::sscanf(tail.c_str(), "-%5u-of-%5u%7s", &no, &count, end) != 3 || std::string(end) != ".gguf" ||
      tail[1] < '0' || tail[1] > '9' || no == 0 || count == 0 || no > count) {
    return std::nullopt;
  }
  return ShardName{path.substr(0, path.size() - kTail), no, count};
}

Result<GgufFile> ReadGgufSet(const std::string& path) {
  STRATA_ASSIGN_OR_RETURN(auto named_file, OpenFile(path));
  STRATA_ASSIGN_OR_RETURN(GgufFile named, ReadGguf(*named_file));
  const uint64_t count = named.GetUnsignedOr(kSplitCount, 0);
  if (count <= 1) return named;
  const std::optional<ShardName> name = ParseShardPath(path);
  if (!name) {
    return Status::InvalidArgument(path + ": a shard of a split set (split.count " + std::to_string(count) +
                                   "), but its name is not PREFIX-NNNNN-of-NNNNN.gguf, so the "
                                   "other shards cannot be found");
  }
  if (name->count != count) {
    return Status::InvalidArgument(path + ": the name says " + std::to_string(name->count) +
                                   " shards, split.count says " + std::to_string(count));
  }
  const uint64_t total_tensors = named.GetUnsignedOr(kSplitTensors, 0);
  std::vector<GgufFile> parts;
  parts.reserve(count);
  for (uint32_t no = 1; no <= count; ++no) {
    const std::string p = ShardPath(name->prefix, no, static_cast<uint32_t>(count));
    if (no == name->no) {
      parts.push_back(std::move(named));
    } else {
      auto f = OpenFile(p);
      if (!f.ok()) {
        if (f.status().code() == StatusCode::kNotFound) {
          return Status::NotFound(p + ": missing shard " + std::to_string(no) + " of " + std::to_string(count) +
                                  " (the set of " + path + ")");
        }
        return f.status();
      }
      STRATA_ASSIGN_OR_RETURN(GgufFile g, ReadGguf(**f));
      parts.push_back(std::move(g));
    }
    const GgufFile& g = parts.back();
    if (g.GetUnsignedOr(kSplitCount, 0) != count) {
      return Status::InvalidArgument(p + ": a shard of another set: split.count is " +
                                     std::to_string(g.GetUnsignedOr(kSplitCount, 0)) + ", expected " +
                                     std::to_string(count));
    }
    if (g.GetUnsignedOr(kSplitNo, UINT64_MAX) != no - 1) {
      return Status::InvalidArgument(p + ": split.no is " + std::to_string(g.GetUnsignedOr(kSplitNo, UINT64_MAX)) +
                                     ", expected " + std::to_string(no - 1) + " for shard " + std::to_string(no));
    }
    if (g.GetUnsignedOr(kSplitTensors, 0) != total_tensors) {
      return Status::InvalidArgument(p + ": a shard of another set: split.tensors.count is " +
                                     std::to_string(g.GetUnsignedOr(kSplitTensors, 0)) + ", expected " +
                                     std::to_string(total_tensors));
    }
    if (g.pack()) {
      return Status::Unsupported(p + ": a packed file (strata pack) cannot be a shard of a split set");
    }
  }
  // The first shard's metadata; every shard's tensors, placed in the set's address space.
  GgufFile set = std::move(parts[0]);
  std::vector<TensorInfo> first = std::move(set.tensors_);
  set.tensors_.clear();
  set.tensor_index_.clear();
  set.shards_.clear();
  const uint64_t first_size = set.file_size_;
  set.file_size_ = 0;
  uint64_t base = 0;
  for (uint32_t i = 0; i < count; ++i) {
    GgufFile& g = parts[i];  // i == 0: moved into `set`, whose path and size it had
    std::vector<TensorInfo>& tensors = i == 0 ? first : g.tensors_;
    set.shards_.push_back(
        GgufShard{i == 0 ? set.path_ : g.path_, i == 0 ? first_size : g.file_size_, base, tensors.size()});
    const GgufShard& shard = set.shards_.back();
    set.file_size_ += shard.size;
    for (TensorInfo& t : tensors) {
      t.shard = i;
      t.file_offset += base;
      const auto [it, fresh] = set.tensor_index_.emplace(t.name, set.tensors_.size());
      if (!fresh) {
        const TensorInfo& other = set.tensors_[it->second];
        return Status::Corruption(shard.path + ": tensor '" + t.name + "' is also in " +
                                  set.shards_[other.shard].path);
      }
      set.tensors_.push_back(std::move(t));
    }
    base = AlignUp(base + shard.size, kShardBaseAlignment) + kShardBaseAlignment;
  }
  if (set.tensors_.size() != total_tensors) {
    return Status::Corruption(set.path_ + ": the set's " + std::to_string(count) + " shards hold " +
                              std::to_string(set.tensors_.size()) + " tensors, split.tensors.count says " +
                              std::to_string(total_tensors));
  }
  return set;
}

std::vector<FileExtent> FileExtentsOf(const GgufFile& gguf) {
  std::vector<FileExtent> out;
  for (const GgufShard& s : gguf.shards()) out.push_back({s.path, s.base});
  return out;
}

Result<std::unique_ptr<RandomAccessFile>> OpenGgufData(const GgufFile& gguf, PreadFn read_fn) {
  if (!gguf.is_split()) return OpenFile(gguf.path(), std::move(read_fn));
  std::vector<std::unique_ptr<RandomAccessFile>> files;
  for (const GgufShard& s : gguf.shards()) {
    STRATA_ASSIGN_OR_RETURN(auto f, OpenFile(s.path, read_fn));
    if (f->size() != s.size) {
      return Status::IOError(s.path + ": changed size since it was opened (" + std::to_string(s.size) + " -> " +
                             std::to_string(f->size()) + " bytes)");
    }
    files.push_back(std::move(f));
  }
  return std::unique_ptr<RandomAccessFile>(new ShardedFile(gguf.shards(), std::move(files)));
}

}  // namespace strata::storage

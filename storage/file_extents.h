// The open descriptors behind an AsyncReader: one file, or the shards of a split set,
// each at its base in one address space (GgufShard). A read op names an offset in that
// space; Resolve() says which descriptor and local offset serve it. Ops never span two
// files (a tensor lives in one shard, and bases leave a gap past each file's end).
// Immutable after Open(); thread-safe to Resolve() from many threads.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "util/status.h"

namespace strata::storage {

struct FileExtent {
  std::string path;
  uint64_t base = 0;  // where the file's byte 0 sits in the address space
};

class FileExtents {
 public:
  struct Open_ {
    std::string path;
    uint64_t base = 0;
    uint64_t size = 0;
    int fd = -1;
    uint64_t end() const { return base + size; }
  };

  // Opens every file read-only, O_DIRECT if `*direct` (cleared, for all, when a
  // filesystem refuses it). Errors name the file.
  static Result<FileExtents> Open(const std::vector<FileExtent>& files, bool* direct);
  FileExtents() = default;
  FileExtents(FileExtents&& other) noexcept : files_(std::move(other.files_)) { other.files_.clear(); }
  FileExtents& operator=(FileExtents&& other) noexcept;
  FileExtents(const FileExtents&) = delete;
  FileExtents& operator=(const FileExtents&) = delete;
  ~FileExtents();

  // The file holding `offset` (the last whose base is at or below it).
  const Open_& Resolve(uint64_t offset) const {
    for (size_t i = files_.size(); i-- > 1;) {
      if (offset >= files_[i].base) return files_[i];
    }
    return files_[0];
  }
  const std::string& path() const { return files_[0].path; }
  uint64_t span() const { return files_.back().end(); }

 private:
  std::vector<Open_> files_;
};

// The files mapped read-only side by side at their bases in one reservation, so that
// data + offset is the byte at `offset` of the address space. Unmap with
// munmap(data, bytes). Errors name the file.
struct Mapping {
  const uint8_t* data = nullptr;
  uint64_t bytes = 0;
};
Result<Mapping> MapFiles(const std::vector<FileExtent>& files);

}  // namespace strata::storage

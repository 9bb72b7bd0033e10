// A file written all-or-nothing: bytes go to "PATH.tmp", and only Commit() (after a
// flush and fdatasync) renames it to PATH. Destroying an uncommitted OutputFile deletes
// the temporary, so an interrupted or failed writer never leaves a partial output.
// Writes are buffered (8 MiB) so callers may append in small pieces.
// Thread-compatible.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "util/status.h"

namespace strata::storage {

class OutputFile {
 public:
  // Creates PATH.tmp (truncating a stale one).
  static Result<std::unique_ptr<OutputFile>> Create(const std::string& path);
  ~OutputFile();
  OutputFile(const OutputFile&) = delete;
  OutputFile& operator=(const OutputFile&) = delete;

  Status Append(const void* data, size_t n);
  Status AppendZeros(uint64_t n);
  // Overwrites bytes already appended (e.g. a header whose values are known last).
  // REQUIRES: offset + n <= bytes_written().
  Status WriteAt(uint64_t offset, const void* data, size_t n);
  // Writes out buffered bytes so the temporary can be read back (before Commit).
  Status Flush();
  uint64_t bytes_written() const { return written_; }
  const std::string& path() const { return path_; }
  const std::string& tmp_path() const { return tmp_path_; }

  // Flushes, syncs and renames PATH.tmp to PATH. After an error the temporary is gone.
  Status Commit();

 private:
  OutputFile(std::string path, std::string tmp_path, int fd);

  const std::string path_;
  const std::string tmp_path_;
  int fd_;
  std::vector<char> buf_;
  size_t buf_used_ = 0;
  uint64_t written_ = 0;
  bool committed_ = false;
};

}  // namespace strata::storage

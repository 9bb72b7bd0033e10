// A file written all-or-nothing: bytes go to "PATH.tmp", and only Commit() (after a
// flush and fdatasync) renames it to PATH. Destroying an uncommitted OutputFile deletes
// the temporary, so an interrupted or failed writer never leaves a partial output.
//
// Writes are buffered so callers may append in small pieces, and they are made for
// files of tens of gigabytes (make-model, pack): where the filesystem allows it the
// temporary is written with O_DIRECT from two 8 MiB buffers, one filling while the other
// is written by a background thread. The page cache is then neither filled with the
// output (evicting the model a user is running) nor made to copy and write it back,
// which costs more CPU than generating it. Filesystems without O_DIRECT (tmpfs before
// Linux 6.6, some network filesystems) get ordinary buffered writes.
// Thread-compatible.
#pragma once

#include <cstdint>
#include <future>
#include <memory>
#include <string>

#include "util/status.h"

namespace strata::storage {

class OutputFile {
 public:
  enum class Io { kDirectIfPossible, kBuffered };

  // Creates PATH.tmp (truncating a stale one).
  static Result<std::unique_ptr<OutputFile>> Create(const std::string& path,
                                                    Io io = Io::kDirectIfPossible);
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
  // Whether the temporary is being written with O_DIRECT (for tests and reports).
  bool direct() const { return direct_; }

  // Flushes, syncs and renames PATH.tmp to PATH. After an error the temporary is gone.
  Status Commit();

 private:
  struct FreeAligned {
    void operator()(char* p) const;
  };
  OutputFile(std::string path, std::string tmp_path, int fd, bool direct);

  // Waits for the background write, if any, and returns its status.
  Status WaitForWrite();
  // Writes buf[0, n) at file offset `at` on the calling thread (n is a multiple of the
  // block size when direct). Falls back to buffered writes if the filesystem refuses.
  Status WriteOut(const char* buf, size_t n, uint64_t at);
  // Rewrites [offset, offset + n) of bytes already on disk, block by block when direct.
  Status Patch(uint64_t offset, const char* data, size_t n);

  const std::string path_;
  const std::string tmp_path_;
  int fd_;
  bool direct_;
  std::unique_ptr<char, FreeAligned> buffers_[2];
  int current_ = 0;          // the buffer being filled
  size_t used_ = 0;          // bytes in it
  uint64_t buffer_at_ = 0;   // file offset of its first byte (block-aligned when direct)
  std::future<Status> in_flight_;  // the other buffer's write
  uint64_t written_ = 0;
  bool committed_ = false;
};

}  // namespace strata::storage

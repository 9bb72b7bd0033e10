// Random-access reads from a file, behind one small interface so the GGUF reader can
// run on a disk file, on bytes in memory (tests, fuzzing) or on a fault-injecting
// wrapper. The async expert reader (io_uring, pread pool) is a separate interface.
// Implementations are thread-safe for concurrent Read* calls (pread semantics).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "util/status.h"

namespace strata::storage {

class RandomAccessFile {
 public:
  virtual ~RandomAccessFile() = default;

  // The name used in every error message about this file.
  virtual const std::string& path() const = 0;
  virtual uint64_t size() const = 0;

  // Reads exactly `n` bytes at `offset` into `dst`. Reading past the end is an error
  // naming the file and the range; short OS reads are retried. O(n).
  virtual Status ReadExact(uint64_t offset, size_t n, void* dst) const = 0;
};

// "[offset, offset + n)", for error messages that name a read.
std::string RangeText(uint64_t offset, uint64_t n);

// How a file's bytes are read: ::pread, or a fault-injecting stand-in in tests.
using PreadFn = std::function<ssize_t(int fd, void* dst, size_t n, off_t offset)>;

// Opens `path` read-only (no O_DIRECT: metadata reads are small and cache-friendly).
// A read that fails with EIO is tried again, three times in all, before it is
// reported; short reads are continued.
Result<std::unique_ptr<RandomAccessFile>> OpenFile(const std::string& path);
Result<std::unique_ptr<RandomAccessFile>> OpenFile(const std::string& path, PreadFn read_fn);

// A file whose contents are `bytes`, named `name` in errors.
std::unique_ptr<RandomAccessFile> NewMemoryFile(std::string name, std::string bytes);

}  // namespace strata::storage

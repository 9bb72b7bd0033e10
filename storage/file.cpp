#include "storage/file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace strata::storage {

std::string RangeText(uint64_t offset, uint64_t n) {
  return "[" + std::to_string(offset) + ", " + std::to_string(offset + n) + ")";
}

namespace {

class PosixFile final : public RandomAccessFile {
 public:
  PosixFile(std::string path, int fd, uint64_t size, PreadFn read_fn)
      : path_(std::move(path)), fd_(fd), size_(size), read_fn_(std::move(read_fn)) {}
  ~PosixFile() override { ::close(fd_); }
  PosixFile(const PosixFile&) = delete;
  PosixFile& operator=(const PosixFile&) = delete;

  const std::string& path() const override { return path_; }
  uint64_t size() const override { return size_; }

  Status ReadExact(uint64_t offset, size_t n, void* dst) const override {
    if (offset > size_ || n > size_ - offset) {
      return Status::Corruption(path_ + ": read " + RangeText(offset, n) +
                                " past end of file (size " + std::to_string(size_) + ")");
    }
    auto* out = static_cast<char*>(dst);
    size_t done = 0;
    int eio_left = kEioAttempts - 1;
    while (done < n) {
      const ssize_t got =
          read_fn_ ? read_fn_(fd_, out + done, n - done, static_cast<off_t>(offset + done))
                   : ::pread(fd_, out + done, n - done, static_cast<off_t>(offset + done));
      if (got < 0) {
        const int err = errno;
        if (err == EINTR) continue;
        if (err == EIO && eio_left-- > 0) continue;  // a drive's transient error
        return Status::IOError(
            path_ + ": read " + RangeText(offset, n) + ": " + std::strerror(err) +
            (err == EIO ? " (tried " + std::to_string(kEioAttempts) + " times)" : ""));
      }
      if (got == 0) {
        return Status::IOError(path_ + ": file shrank while reading " + RangeText(offset, n));
      }
      done += static_cast<size_t>(got);
    }
    return Status::Ok();
  }

 private:
  static constexpr int kEioAttempts = 3;
  const std::string path_;
  const int fd_;
  const uint64_t size_;
  const PreadFn read_fn_;
};

class MemoryFile final : public RandomAccessFile {
 public:
  MemoryFile(std::string name, std::string bytes)
      : name_(std::move(name)), bytes_(std::move(bytes)) {}

  const std::string& path() const override { return name_; }
  uint64_t size() const override { return bytes_.size(); }

  Status ReadExact(uint64_t offset, size_t n, void* dst) const override {
    if (offset > bytes_.size() || n > bytes_.size() - offset) {
      return Status::Corruption(name_ + ": read " + RangeText(offset, n) +
                                " past end of file (size " + std::to_string(bytes_.size()) + ")");
    }
    if (n > 0) std::memcpy(dst, bytes_.data() + offset, n);
    return Status::Ok();
  }

 private:
  const std::string name_;
  const std::string bytes_;
};

}  // namespace

Result<std::unique_ptr<RandomAccessFile>> OpenFile(const std::string& path) {
  return OpenFile(path, nullptr);
}

Result<std::unique_ptr<RandomAccessFile>> OpenFile(const std::string& path, PreadFn read_fn) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const int err = errno;
    if (err == ENOENT) return Status::NotFound(path + ": no such file");
    return Status::IOError(path + ": cannot open: " + std::strerror(err));
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    return Status::IOError(path + ": cannot stat: " + std::strerror(err));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    return Status::InvalidArgument(path + ": not a regular file");
  }
  return std::unique_ptr<RandomAccessFile>(
      new PosixFile(path, fd, static_cast<uint64_t>(st.st_size), std::move(read_fn)));
}

std::unique_ptr<RandomAccessFile> NewMemoryFile(std::string name, std::string bytes) {
  return std::make_unique<MemoryFile>(std::move(name), std::move(bytes));
}

}  // namespace strata::storage

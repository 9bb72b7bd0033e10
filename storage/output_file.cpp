#include "storage/output_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

namespace strata::storage {
namespace {
constexpr size_t kBufferBytes = 8 << 20;

Status WriteError(const std::string& path, int err) {
  if (err == ENOSPC || err == EDQUOT) {
    return Status::ResourceExhausted(path + ": disk full while writing");
  }
  return Status::IOError(path + ": write failed: " + std::strerror(err));
}
}  // namespace

Result<std::unique_ptr<OutputFile>> OutputFile::Create(const std::string& path) {
  std::string tmp = path + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    return Status::IOError(tmp + ": cannot create: " + std::strerror(errno));
  }
  return std::unique_ptr<OutputFile>(new OutputFile(path, std::move(tmp), fd));
}

OutputFile::OutputFile(std::string path, std::string tmp_path, int fd)
    : path_(std::move(path)), tmp_path_(std::move(tmp_path)), fd_(fd), buf_(kBufferBytes) {}

OutputFile::~OutputFile() {
  if (fd_ >= 0) ::close(fd_);
  if (!committed_) ::unlink(tmp_path_.c_str());
}

Status OutputFile::Flush() {
  size_t done = 0;
  while (done < buf_used_) {
    const ssize_t n = ::write(fd_, buf_.data() + done, buf_used_ - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return WriteError(path_, errno);
    }
    done += static_cast<size_t>(n);
  }
  buf_used_ = 0;
  return Status::Ok();
}

Status OutputFile::Append(const void* data, size_t n) {
  const auto* src = static_cast<const char*>(data);
  while (n > 0) {
    if (buf_used_ == buf_.size()) STRATA_RETURN_IF_ERROR(Flush());
    const size_t take = std::min(n, buf_.size() - buf_used_);
    std::memcpy(buf_.data() + buf_used_, src, take);
    buf_used_ += take;
    src += take;
    n -= take;
    written_ += take;
  }
  return Status::Ok();
}

Status OutputFile::WriteAt(uint64_t offset, const void* data, size_t n) {
  STRATA_RETURN_IF_ERROR(Flush());
  const auto* src = static_cast<const char*>(data);
  while (n > 0) {
    const ssize_t w = ::pwrite(fd_, src, n, static_cast<off_t>(offset));
    if (w < 0) {
      if (errno == EINTR) continue;
      return WriteError(path_, errno);
    }
    src += w;
    n -= static_cast<size_t>(w);
    offset += static_cast<uint64_t>(w);
  }
  return Status::Ok();
}

Status OutputFile::AppendZeros(uint64_t n) {
  static const char kZeros[4096] = {};
  while (n > 0) {
    const size_t take = static_cast<size_t>(std::min<uint64_t>(n, sizeof(kZeros)));
    STRATA_RETURN_IF_ERROR(Append(kZeros, take));
    n -= take;
  }
  return Status::Ok();
}

Status OutputFile::Commit() {
  STRATA_RETURN_IF_ERROR(Flush());
  if (::fdatasync(fd_) != 0) return WriteError(path_, errno);
  if (::close(fd_) != 0) {
    fd_ = -1;
    return WriteError(path_, errno);
  }
  fd_ = -1;
  if (::rename(tmp_path_.c_str(), path_.c_str()) != 0) {
    return Status::IOError(path_ + ": cannot rename from " + tmp_path_ + ": " +
                           std::strerror(errno));
  }
  committed_ = true;
  return Status::Ok();
}

}  // namespace strata::storage

#include "storage/output_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace strata::storage {
namespace {
constexpr size_t kBufferBytes = 8 << 20;
// O_DIRECT wants offsets, lengths and addresses in multiples of the logical block size;
// 4 KiB covers every device we meet.
constexpr size_t kBlock = 4096;

size_t RoundUp(size_t n) { return (n + kBlock - 1) / kBlock * kBlock; }

Status WriteError(const std::string& path, int err) {
  if (err == ENOSPC || err == EDQUOT) {
    return Status::ResourceExhausted(path + ": disk full while writing");
  }
  return Status::IOError(path + ": write failed: " + std::strerror(err));
}
}  // namespace

void OutputFile::FreeAligned::operator()(char* p) const { std::free(p); }

Result<std::unique_ptr<OutputFile>> OutputFile::Create(const std::string& path, Io io) {
  std::string tmp = path + ".tmp";
  // Read and write: rewriting part of a block under O_DIRECT reads the block first.
  const int flags = O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC;
  int fd = -1;
  if (io == Io::kDirectIfPossible) fd = ::open(tmp.c_str(), flags | O_DIRECT, 0644);
  const bool direct = fd >= 0;
  if (fd < 0) fd = ::open(tmp.c_str(), flags, 0644);
  if (fd < 0) {
    return Status::IOError(tmp + ": cannot create: " + std::strerror(errno));
  }
  auto file = std::unique_ptr<OutputFile>(new OutputFile(path, std::move(tmp), fd, direct));
  for (auto& b : file->buffers_) {
    b.reset(static_cast<char*>(std::aligned_alloc(kBlock, kBufferBytes)));
    if (!b) return Status::ResourceExhausted(path + ": out of memory for write buffers");
  }
  return file;
}

OutputFile::OutputFile(std::string path, std::string tmp_path, int fd, bool direct)
    : path_(std::move(path)), tmp_path_(std::move(tmp_path)), fd_(fd), direct_(direct) {}

OutputFile::~OutputFile() {
  if (in_flight_.valid()) in_flight_.wait();  // the writer thread uses fd_ and a buffer
  if (fd_ >= 0) ::close(fd_);
  if (!committed_) ::unlink(tmp_path_.c_str());
}

Status OutputFile::WaitForWrite() {
  return in_flight_.valid() ? in_flight_.get() : Status::Ok();
}

Status OutputFile::WriteOut(const char* buf, size_t n, uint64_t at) {
  size_t done = 0;
  while (done < n) {
    const ssize_t w = ::pwrite(fd_, buf + done, n - done, static_cast<off_t>(at + done));
    if (w < 0) {
      if (errno == EINTR) continue;
      if (errno == EINVAL && direct_) {
        // The filesystem accepted O_DIRECT at open but refuses this write (an alignment
        // it wants larger, a short write leaving an odd offset): go on buffered.
        ::fcntl(fd_, F_SETFL, ::fcntl(fd_, F_GETFL) & ~O_DIRECT);
        direct_ = false;
        continue;
      }
      return WriteError(path_, errno);
    }
    done += static_cast<size_t>(w);
  }
  return Status::Ok();
}

Status OutputFile::Append(const void* data, size_t n) {
  const auto* src = static_cast<const char*>(data);
  while (n > 0) {
    if (used_ == kBufferBytes) {
      // Hand the full buffer to a writer thread and fill the other one meanwhile.
      STRATA_RETURN_IF_ERROR(WaitForWrite());
      const char* full = buffers_[current_].get();
      const uint64_t at = buffer_at_;
      in_flight_ = std::async(std::launch::async,
                              [this, full, at] { return WriteOut(full, kBufferBytes, at); });
      current_ ^= 1;
      buffer_at_ += kBufferBytes;
      used_ = 0;
    }
    const size_t take = std::min(n, kBufferBytes - used_);
    std::memcpy(buffers_[current_].get() + used_, src, take);
    used_ += take;
    src += take;
    n -= take;
    written_ += take;
  }
  return Status::Ok();
}

Status OutputFile::Flush() {
  STRATA_RETURN_IF_ERROR(WaitForWrite());
  if (used_ == 0) return Status::Ok();
  char* buf = buffers_[current_].get();
  if (!direct_) {
    STRATA_RETURN_IF_ERROR(WriteOut(buf, used_, buffer_at_));
    buffer_at_ += used_;
    used_ = 0;
    return Status::Ok();
  }
  // Direct writes are whole blocks: write the last one zero-padded, cut the file back to
  // its length, and keep that partial block buffered so the next flush rewrites it whole.
  const size_t padded = RoundUp(used_);
  std::memset(buf + used_, 0, padded - used_);
  STRATA_RETURN_IF_ERROR(WriteOut(buf, padded, buffer_at_));
  if (padded != used_ && ::ftruncate(fd_, static_cast<off_t>(written_)) != 0) {
    return WriteError(path_, errno);
  }
  const size_t keep_from = used_ / kBlock * kBlock;
  std::memmove(buf, buf + keep_from, used_ - keep_from);
  buffer_at_ += keep_from;
  used_ -= keep_from;
  return Status::Ok();
}

Status OutputFile::Patch(uint64_t offset, const char* data, size_t n) {
  if (!direct_) return WriteOut(data, n, offset);
  // Read-modify-write whole blocks through the idle buffer (no write is in flight).
  char* scratch = buffers_[current_ ^ 1].get();
  uint64_t block = offset / kBlock * kBlock;
  const uint64_t end = offset + n;
  while (block < end) {
    const size_t len = static_cast<size_t>(std::min<uint64_t>(kBufferBytes, RoundUp(end - block)));
    size_t got = 0;
    for (;;) {
      const ssize_t r = ::pread(fd_, scratch + got, len - got, static_cast<off_t>(block + got));
      if (r < 0 && errno == EINTR) continue;
      if (r < 0) return Status::IOError(tmp_path_ + ": read back failed: " + std::strerror(errno));
      got += static_cast<size_t>(r);
      break;  // a short read of a regular file means the rest is past its end
    }
    std::memset(scratch + got, 0, len - got);
    const uint64_t from = std::max(offset, block), to = std::min(end, block + len);
    std::memcpy(scratch + (from - block), data + (from - offset), to - from);
    STRATA_RETURN_IF_ERROR(WriteOut(scratch, len, block));
    block += len;
  }
  if (::ftruncate(fd_, static_cast<off_t>(written_)) != 0) return WriteError(path_, errno);
  return Status::Ok();
}

Status OutputFile::WriteAt(uint64_t offset, const void* data, size_t n) {
  STRATA_RETURN_IF_ERROR(Flush());
  const auto* src = static_cast<const char*>(data);
  STRATA_RETURN_IF_ERROR(Patch(offset, src, n));
  // A partial block still buffered is written again by the next flush: patch it too.
  const uint64_t from = std::max(offset, buffer_at_), to = std::min(offset + n, buffer_at_ + used_);
  if (from < to) {
    std::memcpy(buffers_[current_].get() + (from - buffer_at_), src + (from - offset), to - from);
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

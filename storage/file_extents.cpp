#include "storage/file_extents.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "util/log.h"

namespace strata::storage {

Result<FileExtents> FileExtents::Open(const std::vector<FileExtent>& files, bool* direct) {
  FileExtents out;
  for (const FileExtent& f : files) {
    int fd = ::open(f.path.c_str(), O_RDONLY | O_CLOEXEC | (*direct ? O_DIRECT : 0));
    if (fd < 0 && *direct && errno == EINVAL) {
      // tmpfs and some FUSE filesystems refuse O_DIRECT; buffered reads still work.
      Log(LogModule::kStorage).info("{}: O_DIRECT not supported here; using buffered reads", f.path);
      *direct = false;
      return Open(files, direct);
    }
    if (fd < 0) {
      const int e = errno;
      if (e == ENOENT) return Status::NotFound(f.path + ": no such file");
      return Status::IOError(f.path + ": cannot open: " + std::strerror(e));
    }
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
      const int e = errno;
      ::close(fd);
      return Status::IOError(f.path + ": cannot stat: " + std::strerror(e));
    }
    out.files_.push_back({f.path, f.base, static_cast<uint64_t>(st.st_size), fd});
  }
  if (out.files_.empty()) return Status::InvalidArgument("no file to read");
  return out;
}

Result<Mapping> MapFiles(const std::vector<FileExtent>& files) {
  bool direct = false;
  STRATA_ASSIGN_OR_RETURN(FileExtents opened, FileExtents::Open(files, &direct));
  const uint64_t span = opened.span();
  if (span == 0) return Status::InvalidArgument(opened.path() + ": empty file");
  // One reservation for the whole space, then each file mapped over its part of it.
  void* base = ::mmap(nullptr, span, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (base == MAP_FAILED) return Status::IOError(opened.path() + ": mmap: " + std::strerror(errno));
  for (const FileExtent& f : files) {
    const FileExtents::Open_& e = opened.Resolve(f.base);
    if (e.size == 0) continue;
    void* p = ::mmap(static_cast<uint8_t*>(base) + e.base, e.size, PROT_READ, MAP_SHARED | MAP_FIXED, e.fd, 0);
    if (p == MAP_FAILED) {
      const int err = errno;
      ::munmap(base, span);
      return Status::IOError(e.path + ": mmap: " + std::strerror(err));
    }
  }
  return Mapping{static_cast<const uint8_t*>(base), span};
}

FileExtents& FileExtents::operator=(FileExtents&& other) noexcept {
  if (this != &other) {
    for (const Open_& f : files_) ::close(f.fd);
    files_ = std::move(other.files_);
    other.files_.clear();
  }
  return *this;
}

FileExtents::~FileExtents() {
  for (const Open_& f : files_) ::close(f.fd);
}

}  // namespace strata::storage

// libFuzzer target: arbitrary bytes as the header of a packed GGUF. The file claims to
// be 1 TiB (reads past the input return zeros), so tensor data bounds pass and the
// fuzzer reaches the pack index: every accepted index must keep its bundles aligned,
// inside their blob and inside the file, with raw sizes matching the stacks.
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>

#include "storage/file.h"
#include "storage/gguf.h"

namespace {

class SparseFile final : public strata::storage::RandomAccessFile {
 public:
  SparseFile(const uint8_t* data, size_t size)
      : bytes_(reinterpret_cast<const char*>(data), size) {}
  const std::string& path() const override { return name_; }
  uint64_t size() const override { return uint64_t{1} << 40; }
  strata::Status ReadExact(uint64_t offset, size_t n, void* dst) const override {
    if (offset > size() || n > size() - offset) {
      return strata::Status::IOError("fuzz.gguf: read past the end");
    }
    std::memset(dst, 0, n);
    if (offset < bytes_.size()) {
      std::memcpy(dst, bytes_.data() + offset, std::min<uint64_t>(n, bytes_.size() - offset));
    }
    return strata::Status::Ok();
  }

 private:
  std::string name_ = "fuzz.gguf";
  std::string bytes_;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  SparseFile file(data, size);
  auto parsed = strata::storage::ReadGguf(file);
  if (!parsed.ok() || !parsed->pack()) return 0;
  for (const auto& L : parsed->pack()->layers) {
    uint64_t raw = 0;
    for (int r = 0; r < 3; ++r) {
      const auto* t = parsed->FindTensor(L.stacks[r]);
      if (!t || !t->packed || t->ne[2] != L.n_expert()) abort();
      raw += t->expert_bytes();
    }
    if (raw != L.raw_bytes()) abort();
    for (const auto& e : L.entries) {
      if (e.offset % strata::storage::kPackAlignment != 0 || e.offset < L.blob_offset ||
          e.offset + e.stored > L.blob_offset + L.blob_bytes || e.stored == 0) {
        abort();
      }
      if (!strata::storage::IsKnownCodecByte(e.codec)) abort();
    }
  }
  return 0;
}

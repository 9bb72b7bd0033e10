// Test helper: builds GGUF files byte by byte, with every field under the test's
// control, so rejection tests can write exactly the broken file they mean.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>

namespace strata::testing {

class GgufBytes {
 public:
  GgufBytes& U8(uint8_t v) { return Pod(v); }
  GgufBytes& U32(uint32_t v) { return Pod(v); }
  GgufBytes& U64(uint64_t v) { return Pod(v); }
  GgufBytes& I32(int32_t v) { return Pod(v); }
  GgufBytes& F32(float v) { return Pod(v); }
  GgufBytes& Str(const std::string& s) {
    U64(s.size());
    bytes_ += s;
    return *this;
  }
  GgufBytes& Raw(const std::string& s) {
    bytes_ += s;
    return *this;
  }
  GgufBytes& Header(uint64_t n_tensors, uint64_t n_kv, uint32_t version = 3) {
    return U32(0x46554747).U32(version).U64(n_tensors).U64(n_kv);
  }
  // A key/value with a u32 value.
  GgufBytes& KvU32(const std::string& key, uint32_t v) { return Str(key).U32(4).U32(v); }
  GgufBytes& KvStr(const std::string& key, const std::string& v) { return Str(key).U32(8).Str(v); }
  // A tensor info: name, dims, type, offset.
  GgufBytes& Tensor(const std::string& name, std::initializer_list<uint64_t> ne, uint32_t type,
                    uint64_t offset) {
    Str(name).U32(static_cast<uint32_t>(ne.size()));
    for (uint64_t n : ne) U64(n);
    return U32(type).U64(offset);
  }
  // Zero padding up to a multiple of `align`, then `n` data bytes.
  GgufBytes& AlignThenData(uint64_t align, uint64_t n) {
    while (bytes_.size() % align) bytes_ += '\0';
    bytes_.append(n, '\x5a');
    return *this;
  }
  size_t size() const { return bytes_.size(); }
  const std::string& str() const { return bytes_; }

 private:
  template <typename T>
  GgufBytes& Pod(T v) {
    char buf[sizeof(T)];
    std::memcpy(buf, &v, sizeof(T));
    bytes_.append(buf, sizeof(T));
    return *this;
  }
  std::string bytes_;
};

}  // namespace strata::testing

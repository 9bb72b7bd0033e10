// Plain little-endian (host order: strata runs on x86-64) serialization of trivially
// copyable values and float arrays into a byte vector, and bounds-checked reading back:
// a read past the end fails instead of reading garbage, so a truncated or foreign
// buffer is an error, never a crash. Used for state that one strata process writes and
// another reads on the same machine (serve's prompt cache on disk).
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <span>
#include <type_traits>
#include <vector>

namespace strata {

class ByteWriter {
 public:
  explicit ByteWriter(std::vector<uint8_t>* out) : out_(out) {}

  template <typename T>
  void Put(const T& value) {
    static_assert(std::is_trivially_copyable_v<T>);
    PutBytes(&value, sizeof(T));
  }
  void PutBytes(const void* data, size_t n) {
    if (n == 0) return;
    const size_t at = out_->size();
    out_->resize(at + n);
    std::memcpy(out_->data() + at, data, n);
  }
  // The count, then the values.
  void PutFloats(const std::vector<float>& v) {
    Put<uint64_t>(v.size());
    PutBytes(v.data(), v.size() * sizeof(float));
  }

 private:
  std::vector<uint8_t>* out_;
};

class ByteReader {
 public:
  explicit ByteReader(std::span<const uint8_t> in) : in_(in) {}

  template <typename T>
  bool Get(T* value) {
    static_assert(std::is_trivially_copyable_v<T>);
    return GetBytes(value, sizeof(T));
  }
  bool GetBytes(void* out, size_t n) {
    if (n > in_.size() - pos_) return false;
    if (n == 0) return true;  // `out` may be an empty vector's null data()
    std::memcpy(out, in_.data() + pos_, n);
    pos_ += n;
    return true;
  }
  // A PutFloats array of exactly `expected` values (the reader knows the shape), all
  // finite: state a healthy run saved is, and a NaN read back would flow into kernels.
  bool GetFloats(std::vector<float>* v, uint64_t expected) {
    uint64_t n = 0;
    if (!Get(&n) || n != expected || n * sizeof(float) > in_.size() - pos_) return false;
    v->resize(n);
    return GetBytes(v->data(), n * sizeof(float)) && AllFinite(*v);
  }
  // A PutFloats array of at most `limit` values, all finite.
  bool GetFloatsUpTo(std::vector<float>* v, uint64_t limit) {
    uint64_t n = 0;
    if (!Get(&n) || n > limit || n * sizeof(float) > in_.size() - pos_) return false;
    v->resize(n);
    return GetBytes(v->data(), n * sizeof(float)) && AllFinite(*v);
  }
  static bool AllFinite(const std::vector<float>& v) {
    for (const float x : v) {
      if (!std::isfinite(x)) return false;
    }
    return true;
  }
  bool done() const { return pos_ == in_.size(); }

 private:
  std::span<const uint8_t> in_;
  size_t pos_ = 0;
};

}  // namespace strata

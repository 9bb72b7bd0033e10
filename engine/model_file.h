// A GGUF model whose tensors are read into RAM: one 64-byte aligned buffer per tensor,
// read with pread (until the tiers land, every tensor is resident). Views into it are
// WeightMatrix values that stay valid as long as the ModelFile lives.
// Loading is O(model bytes) of I/O; lookups are O(1). Thread-compatible; the views
// are safe to read from many threads.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "engine/kernels/matmul.h"
#include "storage/gguf.h"
#include "util/status.h"

namespace strata::engine {

class ModelFile {
 public:
  static Result<std::unique_ptr<ModelFile>> Open(const std::string& path);

  const storage::GgufFile& gguf() const { return gguf_; }
  const std::string& path() const { return gguf_.path(); }

  // The tensor's bytes, or nullptr if the file has no such tensor.
  const uint8_t* Data(const std::string& name) const;

  // `name` as a matrix of ne[1] * ne[2] * ne[3] rows; errors name the tensor and say
  // what shape was expected. `expected_ne` lists the dimensions (unlisted = 1).
  Result<kernels::WeightMatrix> Matrix(const std::string& name,
                                       std::vector<uint64_t> expected_ne) const;
  // A 1-D F32 tensor (norm weights, biases) of `n` values.
  Result<const float*> Vector(const std::string& name, uint64_t n) const;

  uint64_t resident_bytes() const { return resident_bytes_; }

 private:
  struct AlignedFree {
    void operator()(uint8_t* p) const { std::free(p); }
  };

  storage::GgufFile gguf_;
  std::unordered_map<std::string, std::unique_ptr<uint8_t, AlignedFree>> data_;
  uint64_t resident_bytes_ = 0;
};

}  // namespace strata::engine

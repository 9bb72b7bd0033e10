// A GGUF model's tensor catalog and the tensors that live in RAM: by default every
// tensor, one 64-byte aligned buffer each, read with pread; with a `load` filter only
// the tensors it accepts (the residency plan's pinned set; routed expert stacks then
// come through the expert cache); with `mmap` every tensor is a view into a read-only
// mapping (the page-cache baseline). Views are WeightMatrix values that stay valid as
// long as the ModelFile lives; a tensor that was not loaded has a null data pointer.
// Loading is O(model bytes) of I/O; lookups are O(1). Thread-compatible; the views
// are safe to read from many threads.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "engine/kernels/matmul.h"
#include "storage/gguf.h"
#include "util/status.h"

namespace strata {
class ProgressBar;
}

namespace strata::engine {

class ModelFile {
 public:
  struct Options {
    std::function<bool(const storage::TensorInfo&)> load;  // null: every tensor
    bool mmap = false;
    ProgressBar* progress = nullptr;  // advanced by each tensor's bytes
    storage::PreadFn read_fn;         // null: ::pread (tests inject faults here)
  };
  static Result<std::unique_ptr<ModelFile>> Open(const std::string& path);
  static Result<std::unique_ptr<ModelFile>> Open(const std::string& path, const Options& options);
  ~ModelFile();

  const storage::GgufFile& gguf() const { return gguf_; }
  const std::string& path() const { return gguf_.path(); }

  // The tensor's bytes, or nullptr if the file has no such tensor.
  const uint8_t* Data(const std::string& name) const;

  // `name` as a matrix of ne[1] * ne[2] * ne[3] rows; errors name the tensor and say
  // what shape was expected. `expected_ne` lists the dimensions (unlisted = 1).
  Result<kernels::WeightMatrix> Matrix(const std::string& name,
                                       std::vector<uint64_t> expected_ne) const;
  // The same shape check for a table of rows strata decodes itself (Engram rows,
  // I8 containers): any type.
  Result<kernels::WeightMatrix> RowTable(const std::string& name,
                                         std::vector<uint64_t> expected_ne) const;
  // A 1-D F32 tensor (norm weights, biases) of `n` values.
  Result<const float*> Vector(const std::string& name, uint64_t n) const;

  uint64_t resident_bytes() const { return resident_bytes_; }

  // Frees a loaded tensor the model no longer reads (legacy attn_kv_b, once split);
  // its views become invalid. No-op for mapped files and tensors not loaded.
  void Release(const std::string& name);

 private:
  struct AlignedFree {
    void operator()(uint8_t* p) const { std::free(p); }
  };

  storage::GgufFile gguf_;
  std::unordered_map<std::string, std::unique_ptr<uint8_t, AlignedFree>> data_;
  uint64_t resident_bytes_ = 0;
  const uint8_t* mapping_ = nullptr;
  uint64_t mapping_bytes_ = 0;
};

}  // namespace strata::engine

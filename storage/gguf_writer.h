// Writes a GGUF v3 file whose tensor data is streamed: each tensor's bytes come from a
// producer callback at write time, so memory use does not depend on the model size.
// Output goes to OUT.tmp and is renamed to OUT only when complete (see OutputFile);
// Ctrl-C (util/cancel.h) stops between chunks and leaves nothing behind.
// Thread-compatible; producers run on the calling thread, in declaration order.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "storage/ggml_types.h"
#include "storage/gguf_value.h"
#include "util/status.h"

namespace strata {
class ProgressBar;
}

namespace strata::storage {

// Where a producer writes its tensor's bytes, in order, in pieces of any size.
class ByteSink {
 public:
  virtual ~ByteSink() = default;
  virtual Status Write(const void* data, size_t n) = 0;
};

class GgufWriter {
 public:
  using Producer = std::function<Status(ByteSink& sink)>;

  // `alignment` must be a power of two; it is written as general.alignment unless 32.
  explicit GgufWriter(uint64_t alignment = 32);

  // Keys are written in insertion order. REQUIRES: `key` not added before.
  void AddMetadata(std::string key, GgufValue value);

  // Declares a tensor. The producer must write exactly the tensor's byte size.
  Status AddTensor(std::string name, GgmlType type, std::vector<uint64_t> ne, Producer producer);

  uint64_t data_bytes() const { return data_bytes_; }

  // Writes the whole file to `path` (via path.tmp). `progress` may be null.
  Status WriteTo(const std::string& path, ProgressBar* progress = nullptr);

  // Writes a split set as llama.cpp's gguf-split does: tensors in order, a new shard
  // whenever the next tensor would take the current one past `max_shard_bytes` (a
  // shard holds at least one tensor); the metadata in the first; split.no (u16),
  // split.count (u16) and split.tensors.count (i32) in every shard. `path` without its
  // ".gguf" is the prefix: PREFIX-00001-of-0000N.gguf, ... Every shard is written to
  // .tmp first and renamed only when all are complete. Returns the shard paths.
  Result<std::vector<std::string>> WriteSplitTo(const std::string& path, uint64_t max_shard_bytes,
                                                ProgressBar* progress = nullptr);

 private:
  struct PendingTensor {
    std::string name;
    GgmlType type;
    std::vector<uint64_t> ne;
    uint64_t offset;
    uint64_t bytes;
    Producer producer;
  };

  uint64_t alignment_;
  std::vector<std::pair<std::string, GgufValue>> metadata_;
  std::vector<PendingTensor> tensors_;
  uint64_t data_bytes_ = 0;
};

// The header of a GGUF v3 file (magic through tensor infos, before alignment padding).
// general.alignment is added when `alignment` is not 32 and the metadata lacks it.
struct HeaderTensor {
  std::string name;
  GgmlType type;
  std::vector<uint64_t> ne;
  uint64_t offset;  // from the start of the data section
};
std::string EncodeGgufHeader(const std::vector<std::pair<std::string, GgufValue>>& metadata,
                             const std::vector<HeaderTensor>& tensors, uint64_t alignment);

// Serialises one value (type tag excluded) as GGUF encodes it; exposed for tests
// that hand-build broken files.
void EncodeGgufValue(const GgufValue& value, std::string* out);

}  // namespace strata::storage

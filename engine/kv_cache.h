// The MLA KV cache: per layer and position, the normalised compressed latent
// (kv_lora_rank values) followed by the roped shared key (qk_rope values), never
// expanded per head. Stored as f32 or f16. Memory: n_layer * n_ctx * (kv_lora + rope)
// * 2 or 4 bytes, allocated once. Thread-compatible; distinct positions may be
// written from different threads.
#pragma once

#include <cstdint>
#include <vector>

#include "storage/ggml_types.h"
#include "util/byte_io.h"

namespace strata::engine {

class MlaKvCache {
 public:
  MlaKvCache(uint32_t n_layer, uint32_t n_ctx, uint32_t kv_lora, uint32_t rope,
             storage::GgmlType type);

  uint32_t n_ctx() const { return n_ctx_; }
  uint32_t row_values() const { return kv_lora_ + rope_; }
  storage::GgmlType type() const { return type_; }
  uint64_t bytes() const { return data_.size(); }

  // Stores [latent | rope key] for `layer` at `pos`. REQUIRES: pos < n_ctx().
  void Write(uint32_t layer, uint32_t pos, const float* latent, const float* rope_key);
  // The stored row (type() values) for `layer` at `pos`.
  const uint8_t* Row(uint32_t layer, uint32_t pos) const {
    return data_.data() + (static_cast<size_t>(layer) * n_ctx_ + pos) * row_bytes_;
  }
  size_t row_bytes() const { return row_bytes_; }

  // Every layer's rows of the first `n` positions; Load reads them back and fails
  // (false) on bytes of another shape or a longer sequence than n_ctx().
  void Save(int64_t n, ByteWriter& out) const;
  bool Load(int64_t n, ByteReader& in);

 private:
  uint32_t n_layer_, n_ctx_, kv_lora_, rope_;
  storage::GgmlType type_;
  size_t row_bytes_;
  std::vector<uint8_t> data_;
};

}  // namespace strata::engine

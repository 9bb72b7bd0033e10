#include "engine/kv_cache.h"

#include <cstring>

#include "engine/quant/fp16.h"

namespace strata::engine {

MlaKvCache::MlaKvCache(uint32_t n_layer, uint32_t n_ctx, uint32_t kv_lora, uint32_t rope,
                       storage::GgmlType type)
    : n_layer_(n_layer),
      n_ctx_(n_ctx),
      kv_lora_(kv_lora),
      rope_(rope),
      type_(type),
      row_bytes_(static_cast<size_t>(kv_lora + rope) * (type == storage::GgmlType::kF16 ? 2 : 4)),
      data_(static_cast<size_t>(n_layer) * n_ctx * row_bytes_) {}

void MlaKvCache::Write(uint32_t layer, uint32_t pos, const float* latent, const float* rope_key) {
  uint8_t* row = data_.data() + (static_cast<size_t>(layer) * n_ctx_ + pos) * row_bytes_;
  if (type_ == storage::GgmlType::kF16) {
    auto* h = reinterpret_cast<uint16_t*>(row);
    for (uint32_t i = 0; i < kv_lora_; ++i) h[i] = FloatToHalf(latent[i]);
    for (uint32_t i = 0; i < rope_; ++i) h[kv_lora_ + i] = FloatToHalf(rope_key[i]);
  } else {
    std::memcpy(row, latent, kv_lora_ * sizeof(float));
    std::memcpy(row + kv_lora_ * sizeof(float), rope_key, rope_ * sizeof(float));
  }
}

void MlaKvCache::Save(int64_t n, ByteWriter& out) const {
  out.Put<uint32_t>(n_layer_);
  out.Put<uint64_t>(row_bytes_);
  for (uint32_t layer = 0; layer < n_layer_; ++layer) {
    out.PutBytes(Row(layer, 0), static_cast<size_t>(n) * row_bytes_);
  }
}

bool MlaKvCache::Load(int64_t n, ByteReader& in) {
  uint32_t layers = 0;
  uint64_t row_bytes = 0;
  if (!in.Get(&layers) || !in.Get(&row_bytes) || layers != n_layer_ || row_bytes != row_bytes_ ||
      n < 0 || n > n_ctx_) {
    return false;
  }
  for (uint32_t layer = 0; layer < n_layer_; ++layer) {
    uint8_t* rows = data_.data() + static_cast<size_t>(layer) * n_ctx_ * row_bytes_;
    const size_t bytes = static_cast<size_t>(n) * row_bytes_;
    if (!in.GetBytes(rows, bytes)) return false;
    // Finite values only: a saved cache is, and a NaN would flow into the kernels.
    if (type_ == storage::GgmlType::kF16) {
      for (size_t i = 0; i < bytes; i += 2) {
        uint16_t h;
        std::memcpy(&h, rows + i, 2);
        if ((h & 0x7c00) == 0x7c00) return false;  // Inf or NaN
      }
    } else {
      for (size_t i = 0; i < bytes; i += 4) {
        float f;
        std::memcpy(&f, rows + i, 4);
        if (!std::isfinite(f)) return false;
      }
    }
  }
  return true;
}

}  // namespace strata::engine

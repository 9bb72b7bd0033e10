#include "engine/kv_cache.h"

#include <cstring>

#include "engine/quant/fp16.h"

namespace strata::engine {

MlaKvCache::MlaKvCache(uint32_t n_layer, uint32_t n_ctx, uint32_t kv_lora, uint32_t rope,
                       storage::GgmlType type)
    : n_ctx_(n_ctx),
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

}  // namespace strata::engine

// Small vector operations the attention inner loops need, scalar and AVX2 (F16C):
// f16 -> f32 row conversion and y += a * x; and RMSNorm, plain scalar (its float
// summation order is part of the models' bit-exact results). Pure; thread-safe.
#pragma once

#include <cstdint>

#include "engine/kernels/kernels.h"

namespace strata::engine::kernels {

void ConvertF16ToF32(const uint16_t* x, float* y, int64_t n, Isa isa);
void Axpy(float a, const float* x, float* y, int64_t n, Isa isa);
// out = x * w / sqrt(mean(x^2) + eps); w null: unweighted. `out` may alias `x`.
void RmsNorm(const float* x, const float* w, int64_t n, float eps, float* out);

}  // namespace strata::engine::kernels

#include "engine/kernels/kernels.h"

#include <algorithm>
#include <cmath>
#include <cstring>

namespace strata::engine::kernels {

using storage::GgmlType;

Isa BestIsa() {
  static const Isa isa = [] {
    __builtin_cpu_init();
    const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
                      __builtin_cpu_supports("f16c");
    return avx2 ? Isa::kAvx2 : Isa::kScalar;
  }();
  return isa;
}

const char* IsaName(Isa isa) { return isa == Isa::kAvx2 ? "avx2" : "scalar"; }

bool HasDot(GgmlType type) { return GetDot(type, Isa::kScalar) != nullptr; }

ActivationFormat ActivationFormatFor(GgmlType type) {
  switch (type) {
    case GgmlType::kQ8_0:
    case GgmlType::kQ4_0:
    case GgmlType::kQ5_0:
    case GgmlType::kQ4_1:
    case GgmlType::kQ5_1:
      return ActivationFormat::kQ8;
    case GgmlType::kQ4_K:
    case GgmlType::kQ5_K:
    case GgmlType::kQ6_K:
    case GgmlType::kQ2_K:
    case GgmlType::kQ3_K:
      return ActivationFormat::kQ8K;
    default:
      return ActivationFormat::kF32;
  }
}

size_t ActivationBytes(ActivationFormat format, int64_t n) {
  switch (format) {
    case ActivationFormat::kF32:
      return static_cast<size_t>(n) * sizeof(float);
    case ActivationFormat::kQ8:
      return static_cast<size_t>(n / 32) * sizeof(ActQ8Block);
    case ActivationFormat::kQ8K:
      return static_cast<size_t>(n / 256) * sizeof(ActQ8KBlock);
  }
  return 0;
}

void PrepareActivation(ActivationFormat format, const float* x, int64_t n, void* out) {
  switch (format) {
    case ActivationFormat::kF32:
      std::memcpy(out, x, static_cast<size_t>(n) * sizeof(float));
      return;
    case ActivationFormat::kQ8: {
      auto* y = static_cast<ActQ8Block*>(out);
      for (int64_t b = 0; b < n / 32; ++b) {
        const float* xb = x + b * 32;
        float amax = 0;
        for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(xb[j]));
        const float d = amax / 127.0f;
        const float id = d > 0 ? 1.0f / d : 0.0f;
        y[b].d = d;
        for (int j = 0; j < 32; ++j) y[b].qs[j] = static_cast<int8_t>(std::nearbyint(xb[j] * id));
      }
      return;
    }
    case ActivationFormat::kQ8K: {
      auto* y = static_cast<ActQ8KBlock*>(out);
      for (int64_t b = 0; b < n / 256; ++b) {
        const float* xb = x + b * 256;
        float amax = 0;
        for (int j = 0; j < 256; ++j) amax = std::max(amax, std::fabs(xb[j]));
        const float d = amax / 127.0f;
        const float id = d > 0 ? 1.0f / d : 0.0f;
        y[b].d = d;
        for (int g = 0; g < 16; ++g) {
          int sum = 0;
          for (int j = 0; j < 16; ++j) {
            const int q = static_cast<int>(std::nearbyint(xb[16 * g + j] * id));
            y[b].qs[16 * g + j] = static_cast<int8_t>(q);
            sum += q;
          }
          y[b].bsums[g] = static_cast<int16_t>(sum);
        }
      }
      return;
    }
  }
}

DotFn GetDot(GgmlType type, Isa isa) {
  switch (type) {
    case GgmlType::kF32:
    case GgmlType::kF16:
    case GgmlType::kBF16:
      return FloatDot(type, isa);
    case GgmlType::kQ8_0:
    case GgmlType::kQ4_0:
    case GgmlType::kQ5_0:
    case GgmlType::kQ4_1:
    case GgmlType::kQ5_1:
      return LegacyDot(type, isa);
    case GgmlType::kQ4_K:
    case GgmlType::kQ5_K:
    case GgmlType::kQ6_K:
    case GgmlType::kQ2_K:
    case GgmlType::kQ3_K:
      return KQuantDot(type, isa);
    default:
      return nullptr;
  }
}

Dot4Fn GetDot4(GgmlType type, Isa isa) {
  if (isa != Isa::kAvx2) return nullptr;
  switch (type) {
    case GgmlType::kQ8_0:
    case GgmlType::kQ4_0:
    case GgmlType::kQ5_0:
      return LegacyDot4(type, isa);
    case GgmlType::kQ4_K:
      return KQuantDot4(type, isa);
    default:
      return nullptr;
  }
}

}  // namespace strata::engine::kernels

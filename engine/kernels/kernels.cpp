#include "engine/kernels/kernels.h"

#include <cpuid.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "engine/quant/fp16.h"

namespace strata::engine::kernels {

using storage::GgmlType;

Isa BestIsa() {
  static const Isa isa = [] {
    __builtin_cpu_init();
    // F16C from CPUID leaf 1 (ECX bit 29): clang 14's __builtin_cpu_supports lacks it.
    unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
    const bool f16c = __get_cpuid(1, &eax, &ebx, &ecx, &edx) && (ecx & (1u << 29));
    const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && f16c;
    return avx2 ? Isa::kAvx2 : Isa::kScalar;
  }();
  return isa;
}

const char* IsaName(Isa isa) { return isa == Isa::kAvx2 ? "avx2" : "scalar"; }

namespace {

// Which activation format and which per-family dot tables serve each weight type.
struct DotFamily {
  GgmlType type;
  ActivationFormat format;
  DotFn (*dot)(GgmlType, Isa);
  Dot4Fn (*dot4)(GgmlType, Isa);  // null: no 4-token kernels for this family
};
constexpr DotFamily kFamilies[] = {
    {GgmlType::kF32, ActivationFormat::kF32, FloatDot, nullptr},
    {GgmlType::kF16, ActivationFormat::kF32, FloatDot, nullptr},
    {GgmlType::kBF16, ActivationFormat::kF32, FloatDot, nullptr},
    {GgmlType::kQ8_0, ActivationFormat::kQ8, LegacyDot, LegacyDot4},
    {GgmlType::kQ4_0, ActivationFormat::kQ8Group, LegacyDot, nullptr},
    {GgmlType::kQ5_0, ActivationFormat::kQ8, LegacyDot, LegacyDot4},
    {GgmlType::kQ4_1, ActivationFormat::kQ8, LegacyDot, LegacyDot4},
    {GgmlType::kQ5_1, ActivationFormat::kQ8, LegacyDot, LegacyDot4},
    {GgmlType::kQ2_K, ActivationFormat::kQ8K, KQuantDot, KQuantDot4},
    {GgmlType::kQ3_K, ActivationFormat::kQ8K, KQuantDot, KQuantDot4},
    {GgmlType::kQ4_K, ActivationFormat::kQ8K, KQuantDot, KQuantDot4},
    {GgmlType::kQ5_K, ActivationFormat::kQ8K, KQuantDot, KQuantDot4},
    {GgmlType::kQ6_K, ActivationFormat::kQ8K, KQuantDot, KQuantDot4},
    {GgmlType::kMXFP4, ActivationFormat::kQ8, Fp4Dot, Fp4Dot4},
    {GgmlType::kIQ2_XXS, ActivationFormat::kQ8K, IqDot, nullptr},
    {GgmlType::kIQ2_XS, ActivationFormat::kQ8K, IqDot, nullptr},
    {GgmlType::kIQ2_S, ActivationFormat::kQ8K, IqDot, nullptr},
    {GgmlType::kIQ3_XXS, ActivationFormat::kQ8K, IqDot, nullptr},
    {GgmlType::kIQ3_S, ActivationFormat::kQ8K, IqDot, nullptr},
    {GgmlType::kIQ1_S, ActivationFormat::kQ8K, IqDot, nullptr},
    {GgmlType::kIQ1_M, ActivationFormat::kQ8K, IqDot, nullptr},
    {GgmlType::kIQ4_NL, ActivationFormat::kQ8, IqDot, nullptr},
    {GgmlType::kIQ4_XS, ActivationFormat::kQ8K, IqDot, nullptr},
};

const DotFamily* FindFamily(GgmlType type) {
  for (const DotFamily& f : kFamilies) {
    if (f.type == type) return &f;
  }
  return nullptr;
}

// The activation rounding is ggml's, as its x86 CPU backend runs it, so that strata and
// llama.cpp multiply the same integers (tests/ggml/llama_logits_test.cc):
// A block of 32 (ggml's quantize_row_q8_0): q = round-half-even(x * 127 / max|x|) and
// scale max|x| / 127, which ggml stores as f16 and strata rounds the same way.
// A rounded activation as int8. Finite activations are already within [-127, 127];
// a NaN (non-finite weights or a hostile saved state upstream) becomes 0, not an
// undefined conversion.
int8_t ToInt8(float rounded) {
  if (rounded >= -128.0f && rounded <= 127.0f) return static_cast<int8_t>(rounded);
  return rounded > 0 ? int8_t{127} : rounded < 0 ? int8_t{-128} : int8_t{0};
}

float QuantizeBlock32(const float* x, int8_t* q) {
  float amax = 0;
  for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[j]));
  const float id = amax > 0 ? 127.0f / amax : 0.0f;
  for (int j = 0; j < 32; ++j) q[j] = ToInt8(std::nearbyint(x[j] * id));
  return HalfToFloat(FloatToHalf(amax / 127.0f));
}

// A block of 256 (ggml's quantize_row_q8_K_ref): the value of largest magnitude (the
// first, on ties) maps to -127, so scale = 1 / (-127 / max) carries max's opposite sign.
float QuantizeBlock256(const float* x, int8_t* q) {
  float amax = 0, max = 0;
  for (int j = 0; j < 256; ++j) {
    if (std::fabs(x[j]) > amax) amax = std::fabs(x[j]), max = x[j];
  }
  if (amax == 0) {
    std::memset(q, 0, 256);
    return 0.0f;
  }
  const float iscale = -127.0f / max;
  for (int j = 0; j < 256; ++j) q[j] = ToInt8(std::min(127.0f, std::nearbyint(iscale * x[j])));
  return 1.0f / iscale;
}

}  // namespace

bool HasDot(GgmlType type) { return FindFamily(type) != nullptr; }

ActivationFormat ActivationFormatFor(GgmlType type) {
  const DotFamily* f = FindFamily(type);
  return f ? f->format : ActivationFormat::kF32;
}

size_t ActivationBytes(ActivationFormat format, int64_t n) {
  switch (format) {
    case ActivationFormat::kF32:
      return static_cast<size_t>(n) * sizeof(float);
    case ActivationFormat::kQ8:
      return static_cast<size_t>(n / 32) * sizeof(ActQ8Block);
    case ActivationFormat::kQ8K:
      return static_cast<size_t>(n / 256) * sizeof(ActQ8KBlock);
    case ActivationFormat::kQ8Group:
      return static_cast<size_t>((n / 32 + 7) / 8) * sizeof(ActQ8Group);
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
      for (int64_t b = 0; b < n / 32; ++b) y[b].d = QuantizeBlock32(x + b * 32, y[b].qs);
      return;
    }
    case ActivationFormat::kQ8K: {
      auto* y = static_cast<ActQ8KBlock*>(out);
      for (int64_t b = 0; b < n / 256; ++b) {
        y[b].d = QuantizeBlock256(x + b * 256, y[b].qs);
        for (int g = 0; g < 16; ++g) {
          int sum = 0;
          for (int j = 0; j < 16; ++j) sum += y[b].qs[16 * g + j];
          y[b].bsums[g] = static_cast<int16_t>(sum);
        }
      }
      return;
    }
    case ActivationFormat::kQ8Group: {
      const int64_t blocks = n / 32;
      std::memset(out, 0, ActivationBytes(format, n));
      auto* g = static_cast<ActQ8Group*>(out);
      for (int64_t b = 0; b < blocks; ++b) {
        ActQ8Group& y = g[b / 8];
        const int64_t j = b % 8;
        y.d[j] = QuantizeBlock32(x + b * 32, y.qs[j]);
        y.sums[j] = 0;
        for (int8_t q : y.qs[j]) y.sums[j] += q;
      }
      return;
    }
  }
}

DotFn GetDot(GgmlType type, Isa isa) {
  const DotFamily* f = FindFamily(type);
  return f ? f->dot(type, isa) : nullptr;
}

Dot4Fn GetDot4(GgmlType type, Isa isa) {
  const DotFamily* f = FindFamily(type);
  return f && f->dot4 && isa == Isa::kAvx2 ? f->dot4(type, isa) : nullptr;
}

PanelMatMulFn GetPanelMatMul(GgmlType type, Isa isa) {
  return type == GgmlType::kQ4_0 ? Q4_0PanelMatMul(isa) : nullptr;
}

}  // namespace strata::engine::kernels

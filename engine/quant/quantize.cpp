#include "engine/quant/quantize.h"

#include <cassert>
#include <cstring>

#include "engine/quant/fp16.h"

namespace strata::engine {

using storage::GgmlType;

bool CanQuantize(GgmlType type) {
  switch (type) {
    case GgmlType::kF32:
    case GgmlType::kF16:
    case GgmlType::kBF16:
    case GgmlType::kQ8_0:
    case GgmlType::kQ4_0:
    case GgmlType::kQ5_0:
    case GgmlType::kQ4_K:
    case GgmlType::kQ4_1:
    case GgmlType::kQ5_1:
    case GgmlType::kQ5_K:
    case GgmlType::kQ6_K:
    case GgmlType::kQ2_K:
    case GgmlType::kQ3_K:
    case GgmlType::kMXFP4:
    case GgmlType::kIQ2_XXS:
    case GgmlType::kIQ2_XS:
    case GgmlType::kIQ2_S:
    case GgmlType::kIQ3_XXS:
    case GgmlType::kIQ3_S:
    case GgmlType::kIQ1_S:
    case GgmlType::kIQ1_M:
    case GgmlType::kIQ4_NL:
    case GgmlType::kIQ4_XS:
      return true;
    default:
      return false;
  }
}

bool CanDequantize(GgmlType type) { return CanQuantize(type); }

void QuantizeRow(GgmlType type, const float* src, int64_t n, void* dst) {
  switch (type) {
    case GgmlType::kF32:
      std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(float));
      return;
    case GgmlType::kF16: {
      auto* y = static_cast<uint16_t*>(dst);
      for (int64_t i = 0; i < n; ++i) y[i] = FloatToHalf(src[i]);
      return;
    }
    case GgmlType::kBF16: {
      auto* y = static_cast<uint16_t*>(dst);
      for (int64_t i = 0; i < n; ++i) y[i] = FloatToBf16(src[i]);
      return;
    }
    case GgmlType::kQ8_0:
      return QuantizeRowQ8_0(src, n, dst);
    case GgmlType::kQ4_0:
      return QuantizeRowQ4_0(src, n, dst);
    case GgmlType::kQ5_0:
      return QuantizeRowQ5_0(src, n, dst);
    case GgmlType::kQ4_K:
      return QuantizeRowQ4_K(src, n, dst);
    case GgmlType::kQ4_1:
      return QuantizeRowQ4_1(src, n, dst);
    case GgmlType::kQ5_1:
      return QuantizeRowQ5_1(src, n, dst);
    case GgmlType::kQ5_K:
      return QuantizeRowQ5_K(src, n, dst);
    case GgmlType::kQ6_K:
      return QuantizeRowQ6_K(src, n, dst);
    case GgmlType::kQ2_K:
      return QuantizeRowQ2_K(src, n, dst);
    case GgmlType::kQ3_K:
      return QuantizeRowQ3_K(src, n, dst);
    case GgmlType::kMXFP4:
      return QuantizeRowMxfp4(src, n, dst);
    case GgmlType::kIQ2_XXS:
      return QuantizeRowIq2xxs(src, n, dst);
    case GgmlType::kIQ2_XS:
      return QuantizeRowIq2xs(src, n, dst);
    case GgmlType::kIQ2_S:
      return QuantizeRowIq2s(src, n, dst);
    case GgmlType::kIQ3_XXS:
      return QuantizeRowIq3xxs(src, n, dst);
    case GgmlType::kIQ3_S:
      return QuantizeRowIq3s(src, n, dst);
    case GgmlType::kIQ1_S:
      return QuantizeRowIq1s(src, n, dst);
    case GgmlType::kIQ1_M:
      return QuantizeRowIq1m(src, n, dst);
    case GgmlType::kIQ4_NL:
      return QuantizeRowIq4nl(src, n, dst);
    case GgmlType::kIQ4_XS:
      return QuantizeRowIq4xs(src, n, dst);
    default:
      assert(false && "QuantizeRow: caller must check CanQuantize()");
  }
}

void DequantizeRow(GgmlType type, const void* src, int64_t n, float* dst) {
  switch (type) {
    case GgmlType::kF32:
      std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(float));
      return;
    case GgmlType::kF16: {
      const auto* x = static_cast<const uint16_t*>(src);
      for (int64_t i = 0; i < n; ++i) dst[i] = HalfToFloat(x[i]);
      return;
    }
    case GgmlType::kBF16: {
      const auto* x = static_cast<const uint16_t*>(src);
      for (int64_t i = 0; i < n; ++i) dst[i] = Bf16ToFloat(x[i]);
      return;
    }
    case GgmlType::kQ8_0:
      return DequantizeRowQ8_0(src, n, dst);
    case GgmlType::kQ4_0:
      return DequantizeRowQ4_0(src, n, dst);
    case GgmlType::kQ5_0:
      return DequantizeRowQ5_0(src, n, dst);
    case GgmlType::kQ4_K:
      return DequantizeRowQ4_K(src, n, dst);
    case GgmlType::kQ4_1:
      return DequantizeRowQ4_1(src, n, dst);
    case GgmlType::kQ5_1:
      return DequantizeRowQ5_1(src, n, dst);
    case GgmlType::kQ5_K:
      return DequantizeRowQ5_K(src, n, dst);
    case GgmlType::kQ6_K:
      return DequantizeRowQ6_K(src, n, dst);
    case GgmlType::kQ2_K:
      return DequantizeRowQ2_K(src, n, dst);
    case GgmlType::kQ3_K:
      return DequantizeRowQ3_K(src, n, dst);
    case GgmlType::kMXFP4:
      return DequantizeRowMxfp4(src, n, dst);
    case GgmlType::kIQ2_XXS:
      return DequantizeRowIq2xxs(src, n, dst);
    case GgmlType::kIQ2_XS:
      return DequantizeRowIq2xs(src, n, dst);
    case GgmlType::kIQ2_S:
      return DequantizeRowIq2s(src, n, dst);
    case GgmlType::kIQ3_XXS:
      return DequantizeRowIq3xxs(src, n, dst);
    case GgmlType::kIQ3_S:
      return DequantizeRowIq3s(src, n, dst);
    case GgmlType::kIQ1_S:
      return DequantizeRowIq1s(src, n, dst);
    case GgmlType::kIQ1_M:
      return DequantizeRowIq1m(src, n, dst);
    case GgmlType::kIQ4_NL:
      return DequantizeRowIq4nl(src, n, dst);
    case GgmlType::kIQ4_XS:
      return DequantizeRowIq4xs(src, n, dst);
    default:
      assert(false && "DequantizeRow: caller must check CanDequantize()");
  }
}

}  // namespace strata::engine

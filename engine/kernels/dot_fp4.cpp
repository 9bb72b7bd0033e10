// MXFP4 weight rows against 8-bit activation blocks of 32. E2M1 codes are taken as
// doubled integers (kMxfp4Doubled, exact in int8), so a block's products sum exactly in
// integers and the block is scaled once by 2^(e-128) * the activation's scale.
#include <array>
#include <cmath>

#include "engine/kernels/kernels.h"
#include "engine/kernels/simd_avx2.h"
#include "engine/quant/quant_blocks.h"
#include "engine/quant/quantize.h"

namespace strata::engine::kernels {
namespace {

using storage::GgmlType;

// 2^(e-128): the E8M0 scale halved, to undo the doubled codes.
const std::array<float, 256> kHalfScale = [] {
  std::array<float, 256> t{};
  for (int e = 0; e < 256; ++e) t[e] = E8m0ToFloat(static_cast<uint8_t>(e)) / 2;
  return t;
}();

float DotMxfp4Scalar(int64_t n, const void* w, const void* a) {
  const auto* x = static_cast<const BlockMxfp4*>(w);
  const auto* y = static_cast<const ActQ8Block*>(a);
  float sum = 0;
  for (int64_t b = 0; b < n / kQKMxfp4; ++b) {
    int isum = 0;
    for (int j = 0; j < 16; ++j) {
      isum += kMxfp4Doubled[x[b].qs[j] & 0x0F] * y[b].qs[j];
      isum += kMxfp4Doubled[x[b].qs[j] >> 4] * y[b].qs[j + 16];
    }
    sum += kHalfScale[x[b].e] * y[b].d * static_cast<float>(isum);
  }
  return sum;
}

// The 32 codes of a block as signed bytes: one table lookup (pshufb) per nibble.
STRATA_AVX2 inline __m256i UnpackMxfp4(const BlockMxfp4& x) {
  const __m128i table = _mm_loadu_si128(reinterpret_cast<const __m128i*>(kMxfp4Doubled));
  return _mm256_shuffle_epi8(_mm256_broadcastsi128_si256(table),
                             avx2::BytesFromNibbles32(x.qs));
}

STRATA_AVX2 float DotMxfp4Avx2(int64_t n, const void* w, const void* a) {
  const auto* x = static_cast<const BlockMxfp4*>(w);
  const auto* y = static_cast<const ActQ8Block*>(a);
  __m256 acc = _mm256_setzero_ps();
  for (int64_t b = 0; b < n / kQKMxfp4; ++b) {
    const __m256 d = _mm256_set1_ps(kHalfScale[x[b].e] * y[b].d);
    const __m256i qy = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(y[b].qs));
    acc = _mm256_fmadd_ps(d, avx2::MulSumSignedBytes(UnpackMxfp4(x[b]), qy), acc);
  }
  return avx2::HorizontalSum(acc);
}

// Four activations per weight row (prefill): each block is unpacked once. Per
// activation the operations are those of DotMxfp4Avx2, so results are bit-identical.
STRATA_AVX2 void Dot4Mxfp4Avx2(int64_t n, const void* w, const void* const* a, float* out) {
  const auto* x = static_cast<const BlockMxfp4*>(w);
  const ActQ8Block* y[4];
  for (int j = 0; j < 4; ++j) y[j] = static_cast<const ActQ8Block*>(a[j]);
  __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(),
                   _mm256_setzero_ps()};
  for (int64_t b = 0; b < n / kQKMxfp4; ++b) {
    const float dw = kHalfScale[x[b].e];
    const __m256i qx = UnpackMxfp4(x[b]);
    for (int j = 0; j < 4; ++j) {
      const __m256 d = _mm256_set1_ps(dw * y[j][b].d);
      const __m256i qy = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(y[j][b].qs));
      acc[j] = _mm256_fmadd_ps(d, avx2::MulSumSignedBytes(qx, qy), acc[j]);
    }
  }
  for (int j = 0; j < 4; ++j) out[j] = avx2::HorizontalSum(acc[j]);
}

}  // namespace

DotFn Fp4Dot(GgmlType type, Isa isa) {
  if (type != GgmlType::kMXFP4) return nullptr;
  return isa == Isa::kAvx2 ? DotMxfp4Avx2 : DotMxfp4Scalar;
}

Dot4Fn Fp4Dot4(GgmlType type, Isa isa) {
  return type == GgmlType::kMXFP4 && isa == Isa::kAvx2 ? Dot4Mxfp4Avx2 : nullptr;
}

}  // namespace strata::engine::kernels

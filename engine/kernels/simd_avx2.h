// Internal to engine/kernels: AVX2 helpers. Every function here is compiled for
// AVX2+FMA+F16C through the target attribute and is only called after BestIsa() said
// the CPU has them.
#pragma once

#include <immintrin.h>

#include <cstdint>
#include <cstring>

#define STRATA_AVX2 __attribute__((target("avx2,fma,f16c")))

namespace strata::engine::kernels::avx2 {

// Sum of the 8 lanes, in a fixed order.
STRATA_AVX2 inline float HorizontalSum(__m256 v) {
  __m128 lo = _mm256_castps256_ps128(v);
  const __m128 hi = _mm256_extractf128_ps(v, 1);
  lo = _mm_add_ps(lo, hi);
  __m128 shuf = _mm_movehdup_ps(lo);
  __m128 sums = _mm_add_ps(lo, shuf);
  shuf = _mm_movehl_ps(shuf, sums);
  sums = _mm_add_ss(sums, shuf);
  return _mm_cvtss_f32(sums);
}

// Sum of the 8 int32 lanes (exact unless the sum overflows).
STRATA_AVX2 inline int HorizontalSumEpi32(__m256i v) {
  __m128i x = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  x = _mm_add_epi32(x, _mm_shuffle_epi32(x, 0x4E));
  x = _mm_add_epi32(x, _mm_shuffle_epi32(x, 0xB1));
  return _mm_cvtsi128_si32(x);
}

// 32 nibbles -> 32 bytes: bytes 0..15 are the low nibbles of x[0..15], 16..31 the high.
STRATA_AVX2 inline __m256i BytesFromNibbles32(const uint8_t* x) {
  const __m128i tmp = _mm_loadu_si128(reinterpret_cast<const __m128i*>(x));
  const __m256i bytes =
      _mm256_insertf128_si256(_mm256_castsi128_si256(tmp), _mm_srli_epi16(tmp, 4), 1);
  return _mm256_and_si256(_mm256_set1_epi8(0x0F), bytes);
}

// 32 bits -> 32 bytes: byte k is 0xFF if bit k of x is set, else 0.
STRATA_AVX2 inline __m256i BytesFromBits32(const uint8_t* x) {
  uint32_t x32;
  std::memcpy(&x32, x, sizeof(x32));
  const __m256i shuffle = _mm256_set_epi64x(0x0303030303030303, 0x0202020202020202,
                                            0x0101010101010101, 0x0000000000000000);
  __m256i bytes = _mm256_shuffle_epi8(_mm256_set1_epi32(static_cast<int>(x32)), shuffle);
  bytes = _mm256_or_si256(bytes, _mm256_set1_epi64x(0x7fbfdfeff7fbfdfe));
  return _mm256_cmpeq_epi8(bytes, _mm256_set1_epi64x(-1));
}

// 8 int32 lanes of the products of signed bytes x and y (pairs summed): x.y per 4 bytes.
STRATA_AVX2 inline __m256 MulSumSignedBytes(__m256i x, __m256i y) {
  const __m256i ax = _mm256_sign_epi8(x, x);  // |x|, so maddubs' unsigned operand is valid
  const __m256i sy = _mm256_sign_epi8(y, x);  // y with x's sign
  const __m256i dot16 = _mm256_maddubs_epi16(ax, sy);
  const __m256i dot32 = _mm256_madd_epi16(dot16, _mm256_set1_epi16(1));
  return _mm256_cvtepi32_ps(dot32);
}

// The same for unsigned x (0..127) against signed y: maddubs takes them as they are.
STRATA_AVX2 inline __m256 MulSumUnsignedSignedBytes(__m256i ux, __m256i y) {
  const __m256i dot16 = _mm256_maddubs_epi16(ux, y);
  return _mm256_cvtepi32_ps(_mm256_madd_epi16(dot16, _mm256_set1_epi16(1)));
}

}  // namespace strata::engine::kernels::avx2

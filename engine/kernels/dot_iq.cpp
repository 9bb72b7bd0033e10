// IQ weight rows against 8-bit activations (super-blocks of 256 with per-16 sums; blocks
// of 32 for IQ4_NL). Every type's weight is w = d * c * g * sign with an integer grid
// value g, an integer sub-block coefficient c and a power-of-two unit, so each
// super-block's dot is one exact integer sum:
//   total = sum over sub-blocks of c * (g*sign . q8),   dot += d * d8 * total * unit.
// The scalar and AVX2 kernels compute the same integer and the same float expression in
// the same order, so their results are bit-identical (the tests assert equality), on
// every CPU. IQ1_S/IQ1_M fold their +-1/8 shift into the integer: c * ((8g +- 1) . q8)
// with unit 1/8. Pure functions; thread-safe.
#include <array>
#include <cstring>

#include "engine/kernels/kernels.h"
#include "engine/kernels/simd_avx2.h"
#include "engine/quant/fp16.h"
#include "engine/quant/iq_grids.h"
#include "engine/quant/quant_blocks.h"

namespace strata::engine::kernels {
namespace {

using storage::GgmlType;

// SignsFromIndex7 for every 7-bit index, so kernels need no popcount.
constexpr std::array<uint8_t, 128> kSigns7 = [] {
  std::array<uint8_t, 128> t{};
  for (int i = 0; i < 128; ++i) {
    int bits = 0;
    for (int k = 0; k < 7; ++k) bits += (i >> k) & 1;
    t[i] = static_cast<uint8_t>(i | ((bits & 1) << 7));
  }
  return t;
}();

// Four sign bytes of a word of four 7-bit sign indices (the low 28 bits).
inline uint32_t Signs7x4(uint32_t word) {
  return kSigns7[word & 127] | (kSigns7[(word >> 7) & 127] << 8) |
         (kSigns7[(word >> 14) & 127] << 16) | (static_cast<uint32_t>(kSigns7[(word >> 21) & 127]) << 24);
}

inline int SignedQ(int q, uint32_t signs, int j) { return (signs >> j) & 1 ? -q : q; }

// sum + d * d8 * total * unit: one super-block's contribution, rounded the same way in
// every kernel. This file is compiled with -ffp-contract=off (engine/CMakeLists.txt):
// otherwise the FMA-enabled kernels fuse the add into an FMA where unit is 1 and the
// scalar ones do not.
inline float AddBlock(float sum, float d, float d8, int total, float unit) {
  return sum + d * d8 * static_cast<float>(total) * unit;
}

// ----------------------------------------------------------------------------------
// Scalar: each type's definition, as integer sums.

// The super-block loop of the scalar kernels: `sub(block, q, ib)` is sub-block ib's
// coefficient-weighted integer dot with its 32 activations q.
template <typename Block, typename Sub>
float ScalarRowDot(int64_t n, const void* w, const void* a, float unit, Sub sub) {
  const auto* x = static_cast<const Block*>(w);
  const auto* y = static_cast<const ActQ8KBlock*>(a);
  float sum = 0;
  for (int64_t b = 0; b < n / 256; ++b) {
    int total = 0;
    for (int ib = 0; ib < 8; ++ib) total += sub(x[b], y[b].qs + 32 * ib, ib);
    sum = AddBlock(sum, HalfToFloat(x[b].d), y[b].d, total, unit);
  }
  return sum;
}

// Signed grid . q over 8 values of an 8-wide grid point (sign bit j of `signs`).
inline int Grid8Dot(uint64_t g, uint32_t signs, const int8_t* q) {
  int s = 0;
  for (int j = 0; j < 8; ++j) s += GridByte(g, j) * SignedQ(q[j], signs, j);
  return s;
}
// The same over 4 values of a 4-wide grid point.
inline int Grid4Dot(uint32_t g, uint32_t signs, const int8_t* q) {
  int s = 0;
  for (int j = 0; j < 4; ++j) s += static_cast<int>((g >> (8 * j)) & 255) * SignedQ(q[j], signs, j);
  return s;
}

float DotIq2xxsScalar(int64_t n, const void* w, const void* a) {
  return ScalarRowDot<BlockIq2xxs>(n, w, a, 0.125f, [](const BlockIq2xxs& x, const int8_t* q, int ib) {
    uint32_t aux[2];
    std::memcpy(aux, x.qs + 4 * ib, sizeof(aux));
    const uint32_t signs = Signs7x4(aux[1]);
    int sub = 0;
    for (int l = 0; l < 4; ++l) sub += Grid8Dot(kIq2xxsGrid[(aux[0] >> (8 * l)) & 255], signs >> (8 * l), q + 8 * l);
    return static_cast<int>(2 * (aux[1] >> 28) + 1) * sub;
  });
}

// IQ2_XS and IQ2_S: a 4-bit coefficient per 16 values.
inline int Iq2Halves(uint8_t scales, int first, int second) {
  return (2 * (scales & 15) + 1) * first + (2 * (scales >> 4) + 1) * second;
}

float DotIq2xsScalar(int64_t n, const void* w, const void* a) {
  return ScalarRowDot<BlockIq2xs>(n, w, a, 0.125f, [](const BlockIq2xs& x, const int8_t* q, int ib) {
    int sub[2] = {0, 0};
    for (int l = 0; l < 4; ++l) {
      const uint16_t code = x.qs[4 * ib + l];
      sub[l / 2] += Grid8Dot(kIq2xsGrid[code & 511], kSigns7[code >> 9], q + 8 * l);
    }
    return Iq2Halves(x.scales[ib], sub[0], sub[1]);
  });
}

inline int Iq2sIndex(const BlockIq2s& x, int ib, int l) {
  return x.qs[4 * ib + l] | (((x.qh[ib] >> (2 * l)) & 3) << 8);
}

float DotIq2sScalar(int64_t n, const void* w, const void* a) {
  return ScalarRowDot<BlockIq2s>(n, w, a, 0.125f, [](const BlockIq2s& x, const int8_t* q, int ib) {
    int sub[2] = {0, 0};
    for (int l = 0; l < 4; ++l) {
      sub[l / 2] += Grid8Dot(kIq2sGrid[Iq2sIndex(x, ib, l)], x.qs[32 + 4 * ib + l], q + 8 * l);
    }
    return Iq2Halves(x.scales[ib], sub[0], sub[1]);
  });
}

float DotIq3xxsScalar(int64_t n, const void* w, const void* a) {
  return ScalarRowDot<BlockIq3xxs>(n, w, a, 0.25f, [](const BlockIq3xxs& x, const int8_t* q, int ib) {
    uint32_t aux;
    std::memcpy(&aux, x.qs + 64 + 4 * ib, sizeof(aux));
    const uint32_t signs = Signs7x4(aux);
    int sub = 0;
    for (int k = 0; k < 8; ++k) sub += Grid4Dot(kIq3xxsGrid[x.qs[8 * ib + k]], signs >> (4 * k), q + 4 * k);
    return static_cast<int>(2 * (aux >> 28) + 1) * sub;
  });
}

float DotIq3sScalar(int64_t n, const void* w, const void* a) {
  return ScalarRowDot<BlockIq3s>(n, w, a, 1.0f, [](const BlockIq3s& x, const int8_t* q, int ib) {
    uint32_t signs;
    std::memcpy(&signs, x.signs + 4 * ib, sizeof(signs));
    int sub = 0;
    for (int k = 0; k < 8; ++k) {
      sub += Grid4Dot(kIq3sGrid[x.qs[8 * ib + k] | (((x.qh[ib] >> k) & 1) << 8)], signs >> (4 * k), q + 4 * k);
    }
    return (2 * ((x.scales[ib / 2] >> (4 * (ib % 2))) & 15) + 1) * sub;
  });
}

// (8g + sigma) . q8 over 8 values of a ternary grid point, sigma = +-1.
inline int Iq1Group(uint64_t g, int sigma, const int8_t* q) {
  int s = 0;
  for (int j = 0; j < 8; ++j) s += (8 * static_cast<int8_t>(GridByte(g, j)) + sigma) * q[j];
  return s;
}

float DotIq1sScalar(int64_t n, const void* w, const void* a) {
  return ScalarRowDot<BlockIq1s>(n, w, a, 0.125f, [](const BlockIq1s& x, const int8_t* q, int ib) {
    const uint16_t qh = x.qh[ib];
    int sub = 0;
    for (int l = 0; l < 4; ++l) {
      const uint64_t g = kIq1sGrid[x.qs[4 * ib + l] | (((qh >> (3 * l)) & 7) << 8)];
      sub += Iq1Group(g, qh & 0x8000 ? -1 : 1, q + 8 * l);
    }
    return (2 * ((qh >> 12) & 7) + 1) * sub;
  });
}

float Iq1mScale(const BlockIq1m& x, uint16_t* sc) {
  std::memcpy(sc, x.scales, 8);
  return HalfToFloat(static_cast<uint16_t>((sc[0] >> 12) | ((sc[1] >> 8) & 0x00f0) |
                                           ((sc[2] >> 4) & 0x0f00) | (sc[3] & 0xf000)));
}

float DotIq1mScalar(int64_t n, const void* w, const void* a) {
  const auto* x = static_cast<const BlockIq1m*>(w);
  const auto* y = static_cast<const ActQ8KBlock*>(a);
  float sum = 0;
  for (int64_t b = 0; b < n / 256; ++b) {
    uint16_t sc[4];
    const float d = Iq1mScale(x[b], sc);
    int total = 0;
    for (int ib = 0; ib < 8; ++ib) {
      for (int half = 0; half < 2; ++half) {
        int sub = 0;
        for (int l = 2 * half; l < 2 * half + 2; ++l) {
          const int nibble = (x[b].qh[2 * ib + l / 2] >> (4 * (l % 2))) & 15;
          const uint64_t g = kIq1sGrid[x[b].qs[4 * ib + l] | ((nibble & 7) << 8)];
          sub += Iq1Group(g, nibble & 8 ? -1 : 1, y[b].qs + 32 * ib + 8 * l);
        }
        total += (2 * ((sc[ib / 2] >> (6 * (ib % 2) + 3 * half)) & 7) + 1) * sub;
      }
    }
    sum = AddBlock(sum, d, y[b].d, total, 0.125f);
  }
  return sum;
}

// kIq4nlValues[codes] . q8 over 32 values stored as IQ4_NL's 16 bytes.
inline int Iq4Sub(const uint8_t* qs, const int8_t* q) {
  int s = 0;
  for (int j = 0; j < 16; ++j) s += kIq4nlValues[qs[j] & 15] * q[j] + kIq4nlValues[qs[j] >> 4] * q[j + 16];
  return s;
}

float DotIq4xsScalar(int64_t n, const void* w, const void* a) {
  return ScalarRowDot<BlockIq4xs>(n, w, a, 1.0f, [](const BlockIq4xs& x, const int8_t* q, int ib) {
    const int ls = ((x.scales_l[ib / 2] >> (4 * (ib % 2))) & 15) | (((x.scales_h >> (2 * ib)) & 3) << 4);
    return (ls - 32) * Iq4Sub(x.qs + 16 * ib, q);
  });
}

float DotIq4nlScalar(int64_t n, const void* w, const void* a) {
  const auto* x = static_cast<const BlockIq4nl*>(w);
  const auto* y = static_cast<const ActQ8Block*>(a);
  float sum = 0;
  for (int64_t b = 0; b < n / 32; ++b) {
    sum = AddBlock(sum, HalfToFloat(x[b].d), y[b].d, Iq4Sub(x[b].qs, y[b].qs), 1.0f);
  }
  return sum;
}

// ----------------------------------------------------------------------------------
// AVX2: one 32-value sub-block per step (two for the IQ4 types). Grid points are gathered
// into a vector by index, signs come as +-1 bytes from a table and are applied to the
// activation (sign_epi8), and maddubs multiplies the unsigned grid values with the
// signed activations: |g| <= 62 and |q8| <= 127 keep every pair sum below int16's limit.
// madd then applies the sub-block coefficients; the int32 lanes are summed once per
// super-block.

// Eight +-1 bytes per sign pattern: byte j is -1 where bit j is set.
constexpr uint64_t SignBytes(uint32_t bits) {
  uint64_t v = 0;
  for (int j = 0; j < 8; ++j) v |= uint64_t{(bits >> j) & 1 ? 0xFFu : 0x01u} << (8 * j);
  return v;
}
constexpr std::array<uint64_t, 256> kSignBytes8 = [] {
  std::array<uint64_t, 256> t{};
  for (uint32_t i = 0; i < 256; ++i) t[i] = SignBytes(i);
  return t;
}();
constexpr std::array<uint64_t, 128> kSignBytes7 = [] {
  std::array<uint64_t, 128> t{};
  for (uint32_t i = 0; i < 128; ++i) t[i] = SignBytes(kSigns7[i]);
  return t;
}();
// IQ1_M's +-1 shifts of four groups of 8 (bit k of the index: group k is -1).
constexpr std::array<std::array<uint64_t, 4>, 16> kIq1Shifts = [] {
  std::array<std::array<uint64_t, 4>, 16> t{};
  for (int i = 0; i < 16; ++i) {
    for (int k = 0; k < 4; ++k) t[i][k] = (i >> k) & 1 ? ~uint64_t{0} : 0x0101010101010101;
  }
  return t;
}();

STRATA_AVX2 inline __m256i LoadQ8(const int8_t* q) {
  return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q));
}

STRATA_AVX2 inline __m256i Gather4(const uint64_t* table, uint32_t i0, uint32_t i1, uint32_t i2, uint32_t i3) {
  return _mm256_set_epi64x(static_cast<int64_t>(table[i3]), static_cast<int64_t>(table[i2]),
                           static_cast<int64_t>(table[i1]), static_cast<int64_t>(table[i0]));
}

// The four 7-bit sign indices of a word, as +-1 bytes.
STRATA_AVX2 inline __m256i Signs7(uint32_t word) {
  return Gather4(kSignBytes7.data(), word & 127, (word >> 7) & 127, (word >> 14) & 127, (word >> 21) & 127);
}
STRATA_AVX2 inline __m256i Signs8(const uint8_t* s) {
  return Gather4(kSignBytes8.data(), s[0], s[1], s[2], s[3]);
}

// Coefficient c0 on the first 16 values, c1 on the last 16.
STRATA_AVX2 inline __m256i Coefficients(int c0, int c1) {
  return _mm256_setr_m128i(_mm_set1_epi16(static_cast<int16_t>(c0)), _mm_set1_epi16(static_cast<int16_t>(c1)));
}

// c * (unsigned grid . signed q) for 32 values, as 8 int32 lanes.
STRATA_AVX2 inline __m256i GridDot(__m256i grid, __m256i signed_q, __m256i coefficients) {
  return _mm256_madd_epi16(_mm256_maddubs_epi16(grid, signed_q), coefficients);
}

// The same for signed weights (|w| <= 127, never 0): maddubs needs the unsigned side.
STRATA_AVX2 inline __m256i SignedDot(__m256i w, __m256i q, __m256i coefficients) {
  return _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_sign_epi8(w, w), _mm256_sign_epi8(q, w)),
                           coefficients);
}

// The super-block loop every grid type shares: `Sub` gives one 32-value sub-block's
// coefficient-weighted products as 8 int32 lanes; the lanes are summed once per
// super-block and added with the type's power-of-two unit.
template <typename Block, typename Sub>
STRATA_AVX2 inline float GridRowDot(int64_t n, const void* w, const void* a, float unit, Sub sub) {
  const auto* x = static_cast<const Block*>(w);
  const auto* y = static_cast<const ActQ8KBlock*>(a);
  float sum = 0;
  for (int64_t b = 0; b < n / 256; ++b) {
    __m256i acc = _mm256_setzero_si256();
    for (int ib = 0; ib < 8; ++ib) acc = _mm256_add_epi32(acc, sub(x[b], LoadQ8(y[b].qs + 32 * ib), ib));
    sum = AddBlock(sum, _cvtsh_ss(x[b].d), y[b].d, avx2::HorizontalSumEpi32(acc), unit);
  }
  return sum;
}

STRATA_AVX2 inline __m256i Grid4x8(const uint32_t* grid, const uint32_t* idx) {
  return _mm256_setr_epi32(static_cast<int>(grid[idx[0]]), static_cast<int>(grid[idx[1]]),
                           static_cast<int>(grid[idx[2]]), static_cast<int>(grid[idx[3]]),
                           static_cast<int>(grid[idx[4]]), static_cast<int>(grid[idx[5]]),
                           static_cast<int>(grid[idx[6]]), static_cast<int>(grid[idx[7]]));
}

// The per-16 coefficients of IQ2_XS and IQ2_S: 2s + 1 for each nibble of the scale byte.
STRATA_AVX2 inline __m256i Iq2Coefficients(int s) { return Coefficients(2 * (s & 15) + 1, 2 * (s >> 4) + 1); }

struct Iq2xxsSub {
  STRATA_AVX2 __m256i operator()(const BlockIq2xxs& x, __m256i q, int ib) const {
    uint32_t aux[2];
    std::memcpy(aux, x.qs + 4 * ib, sizeof(aux));
    const __m256i grid = Gather4(kIq2xxsGrid, aux[0] & 255, (aux[0] >> 8) & 255, (aux[0] >> 16) & 255, aux[0] >> 24);
    const auto c = static_cast<int16_t>(2 * (aux[1] >> 28) + 1);
    return GridDot(grid, _mm256_sign_epi8(q, Signs7(aux[1])), _mm256_set1_epi16(c));
  }
};
struct Iq2xsSub {
  STRATA_AVX2 __m256i operator()(const BlockIq2xs& x, __m256i q, int ib) const {
    const uint16_t* code = x.qs + 4 * ib;
    const __m256i grid = Gather4(kIq2xsGrid, code[0] & 511, code[1] & 511, code[2] & 511, code[3] & 511);
    const __m256i signs = Gather4(kSignBytes7.data(), code[0] >> 9, code[1] >> 9, code[2] >> 9, code[3] >> 9);
    return GridDot(grid, _mm256_sign_epi8(q, signs), Iq2Coefficients(x.scales[ib]));
  }
};
struct Iq2sSub {
  STRATA_AVX2 __m256i operator()(const BlockIq2s& x, __m256i q, int ib) const {
    const uint8_t* lo = x.qs + 4 * ib;
    const uint32_t h = x.qh[ib];
    const __m256i grid = Gather4(kIq2sGrid, lo[0] | ((h << 8) & 0x300), lo[1] | ((h << 6) & 0x300),
                                 lo[2] | ((h << 4) & 0x300), lo[3] | ((h << 2) & 0x300));
    return GridDot(grid, _mm256_sign_epi8(q, Signs8(x.qs + 32 + 4 * ib)), Iq2Coefficients(x.scales[ib]));
  }
};
struct Iq3xxsSub {
  STRATA_AVX2 __m256i operator()(const BlockIq3xxs& x, __m256i q, int ib) const {
    const uint8_t* q3 = x.qs + 8 * ib;
    const uint32_t idx[8] = {q3[0], q3[1], q3[2], q3[3], q3[4], q3[5], q3[6], q3[7]};
    uint32_t aux;
    std::memcpy(&aux, x.qs + 64 + 4 * ib, sizeof(aux));
    const auto c = static_cast<int16_t>(2 * (aux >> 28) + 1);
    return GridDot(Grid4x8(kIq3xxsGrid, idx), _mm256_sign_epi8(q, Signs7(aux)), _mm256_set1_epi16(c));
  }
};
struct Iq3sSub {
  STRATA_AVX2 __m256i operator()(const BlockIq3s& x, __m256i q, int ib) const {
    // Eight 9-bit indices at once: the low bytes widened, bit k of qh[ib] as bit 8 of
    // index k; the grid points then come in with one gather. (Measured: faster than
    // eight scalar loads here, where the indices cost shifts, but slower for IQ3_XXS's
    // plain byte indices and for the 64-bit grids.)
    const __m256i low = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(x.qs + 8 * ib)));
    const __m256i high = _mm256_and_si256(
        _mm256_sllv_epi32(_mm256_set1_epi32(x.qh[ib]), _mm256_setr_epi32(8, 7, 6, 5, 4, 3, 2, 1)),
        _mm256_set1_epi32(256));
    const __m256i grid =
        _mm256_i32gather_epi32(reinterpret_cast<const int*>(kIq3sGrid), _mm256_or_si256(low, high), 4);
    const auto c = static_cast<int16_t>(2 * ((x.scales[ib / 2] >> (4 * (ib % 2))) & 15) + 1);
    return GridDot(grid, _mm256_sign_epi8(q, Signs8(x.signs + 4 * ib)), _mm256_set1_epi16(c));
  }
};

STRATA_AVX2 float DotIq2xxsAvx2(int64_t n, const void* w, const void* a) {
  return GridRowDot<BlockIq2xxs>(n, w, a, 0.125f, Iq2xxsSub{});
}
STRATA_AVX2 float DotIq2xsAvx2(int64_t n, const void* w, const void* a) {
  return GridRowDot<BlockIq2xs>(n, w, a, 0.125f, Iq2xsSub{});
}
STRATA_AVX2 float DotIq2sAvx2(int64_t n, const void* w, const void* a) {
  return GridRowDot<BlockIq2s>(n, w, a, 0.125f, Iq2sSub{});
}
STRATA_AVX2 float DotIq3xxsAvx2(int64_t n, const void* w, const void* a) {
  return GridRowDot<BlockIq3xxs>(n, w, a, 0.25f, Iq3xxsSub{});
}
STRATA_AVX2 float DotIq3sAvx2(int64_t n, const void* w, const void* a) {
  return GridRowDot<BlockIq3s>(n, w, a, 1.0f, Iq3sSub{});
}

// IQ1_S: per sub-block c * (8 (g . q) + sigma sum(q)): the grid part in vectors (g is
// -1, 0 or 1, so sign_epi8 multiplies by it), the shift from the activation's per-16 sums.
STRATA_AVX2 float DotIq1sAvx2(int64_t n, const void* w, const void* a) {
  const auto* x = static_cast<const BlockIq1s*>(w);
  const auto* y = static_cast<const ActQ8KBlock*>(a);
  const __m256i ones = _mm256_set1_epi8(1);
  float sum = 0;
  for (int64_t b = 0; b < n / 256; ++b) {
    __m256i acc = _mm256_setzero_si256();
    int shifts = 0;
    for (int ib = 0; ib < 8; ++ib) {
      const uint8_t* lo = x[b].qs + 4 * ib;
      const uint32_t qh = x[b].qh[ib];
      const __m256i grid = Gather4(kIq1sGrid, lo[0] | ((qh << 8) & 0x700), lo[1] | ((qh << 5) & 0x700),
                                   lo[2] | ((qh << 2) & 0x700), lo[3] | ((qh >> 1) & 0x700));
      const int c = static_cast<int>(2 * ((qh >> 12) & 7) + 1);
      const __m256i gq = _mm256_maddubs_epi16(ones, _mm256_sign_epi8(LoadQ8(y[b].qs + 32 * ib), grid));
      acc = _mm256_add_epi32(acc, _mm256_madd_epi16(gq, _mm256_set1_epi16(static_cast<int16_t>(8 * c))));
      const int q_sum = y[b].bsums[2 * ib] + y[b].bsums[2 * ib + 1];
      shifts += (qh & 0x8000 ? -c : c) * q_sum;
    }
    sum = AddBlock(sum, _cvtsh_ss(x[b].d), y[b].d, avx2::HorizontalSumEpi32(acc) + shifts, 0.125f);
  }
  return sum;
}

STRATA_AVX2 float DotIq1mAvx2(int64_t n, const void* w, const void* a) {
  const auto* x = static_cast<const BlockIq1m*>(w);
  const auto* y = static_cast<const ActQ8KBlock*>(a);
  const __m256i eight = _mm256_set1_epi8(8);
  float sum = 0;
  for (int64_t b = 0; b < n / 256; ++b) {
    uint16_t sc[4];
    std::memcpy(sc, x[b].scales, sizeof(sc));
    const float d = _cvtsh_ss(static_cast<uint16_t>((sc[0] >> 12) | ((sc[1] >> 8) & 0x00f0) |
                                                  ((sc[2] >> 4) & 0x0f00) | (sc[3] & 0xf000)));
    __m256i acc = _mm256_setzero_si256();
    for (int ib = 0; ib < 8; ++ib) {
      const uint8_t* lo = x[b].qs + 4 * ib;
      const uint32_t h0 = x[b].qh[2 * ib], h1 = x[b].qh[2 * ib + 1];
      const __m256i grid = Gather4(kIq1sGrid, lo[0] | ((h0 << 8) & 0x700), lo[1] | ((h0 << 4) & 0x700),
                                   lo[2] | ((h1 << 8) & 0x700), lo[3] | ((h1 << 4) & 0x700));
      const uint32_t negative = ((h0 >> 3) & 1) | ((h0 >> 6) & 2) | ((h1 >> 1) & 4) | ((h1 >> 4) & 8);
      const __m256i shift =
          _mm256_loadu_si256(reinterpret_cast<const __m256i*>(kIq1Shifts[negative].data()));
      const __m256i wts = _mm256_add_epi8(_mm256_sign_epi8(eight, grid), shift);  // 8g +- 1
      const int s = sc[ib / 2] >> (6 * (ib % 2));
      const __m256i c = Coefficients(2 * (s & 7) + 1, 2 * ((s >> 3) & 7) + 1);
      acc = _mm256_add_epi32(acc, SignedDot(wts, LoadQ8(y[b].qs + 32 * ib), c));
    }
    sum = AddBlock(sum, d, y[b].d, avx2::HorizontalSumEpi32(acc), 0.125f);
  }
  return sum;
}

// Two IQ4 sub-blocks of 32 (16 code bytes each) at once: the low nibbles are values 0-15
// of each, the high nibbles values 16-31, and the activations are gathered to match.
struct Iq4Pair {
  __m256i w_lo, w_hi, q_lo, q_hi;
};
STRATA_AVX2 inline Iq4Pair LoadIq4Pair(const uint8_t* qs, const int8_t* q) {
  const __m256i table =
      _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(kIq4nlValues)));
  const __m256i bytes = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qs));
  const __m256i mask = _mm256_set1_epi8(0x0F);
  auto load128 = [](const int8_t* p) { return _mm_loadu_si128(reinterpret_cast<const __m128i*>(p)); };
  return {_mm256_shuffle_epi8(table, _mm256_and_si256(bytes, mask)),
          _mm256_shuffle_epi8(table, _mm256_and_si256(_mm256_srli_epi16(bytes, 4), mask)),
          _mm256_setr_m128i(load128(q), load128(q + 32)), _mm256_setr_m128i(load128(q + 16), load128(q + 48))};
}

STRATA_AVX2 float DotIq4xsAvx2(int64_t n, const void* w, const void* a) {
  const auto* x = static_cast<const BlockIq4xs*>(w);
  const auto* y = static_cast<const ActQ8KBlock*>(a);
  float sum = 0;
  for (int64_t b = 0; b < n / 256; ++b) {
    __m256i acc = _mm256_setzero_si256();
    for (int ib = 0; ib < 8; ib += 2) {
      const int ls0 = ((x[b].scales_l[ib / 2] >> 0) & 15) | (((x[b].scales_h >> (2 * ib)) & 3) << 4);
      const int ls1 = ((x[b].scales_l[ib / 2] >> 4) & 15) | (((x[b].scales_h >> (2 * ib + 2)) & 3) << 4);
      const Iq4Pair p = LoadIq4Pair(x[b].qs + 16 * ib, y[b].qs + 32 * ib);
      const __m256i c = Coefficients(ls0 - 32, ls1 - 32);
      acc = _mm256_add_epi32(acc, _mm256_add_epi32(SignedDot(p.w_lo, p.q_lo, c), SignedDot(p.w_hi, p.q_hi, c)));
    }
    sum = AddBlock(sum, _cvtsh_ss(x[b].d), y[b].d, avx2::HorizontalSumEpi32(acc), 1.0f);
  }
  return sum;
}

STRATA_AVX2 float DotIq4nlAvx2(int64_t n, const void* w, const void* a) {
  const auto* x = static_cast<const BlockIq4nl*>(w);
  const auto* y = static_cast<const ActQ8Block*>(a);
  const __m256i ones = _mm256_set1_epi16(1);
  float sum = 0;
  int64_t b = 0;
  for (; b + 1 < n / 32; b += 2) {
    // Two blocks: their codes are 16 bytes apart, their activations 32 values apart
    // (each ActQ8Block carries its scale first).
    const __m256i table =
        _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(kIq4nlValues)));
    const __m256i bytes = _mm256_setr_m128i(_mm_loadu_si128(reinterpret_cast<const __m128i*>(x[b].qs)),
                                            _mm_loadu_si128(reinterpret_cast<const __m128i*>(x[b + 1].qs)));
    const __m256i mask = _mm256_set1_epi8(0x0F);
    const __m256i w_lo = _mm256_shuffle_epi8(table, _mm256_and_si256(bytes, mask));
    const __m256i w_hi = _mm256_shuffle_epi8(table, _mm256_and_si256(_mm256_srli_epi16(bytes, 4), mask));
    auto load128 = [](const int8_t* p) { return _mm_loadu_si128(reinterpret_cast<const __m128i*>(p)); };
    const __m256i q_lo = _mm256_setr_m128i(load128(y[b].qs), load128(y[b + 1].qs));
    const __m256i q_hi = _mm256_setr_m128i(load128(y[b].qs + 16), load128(y[b + 1].qs + 16));
    const __m256i p = _mm256_add_epi32(SignedDot(w_lo, q_lo, ones), SignedDot(w_hi, q_hi, ones));
    // Lanes 0-3 belong to block b, 4-7 to block b + 1.
    const __m256i h = _mm256_hadd_epi32(p, p);
    const __m256i hh = _mm256_hadd_epi32(h, h);
    sum = AddBlock(sum, _cvtsh_ss(x[b].d), y[b].d, _mm256_extract_epi32(hh, 0), 1.0f);
    sum = AddBlock(sum, _cvtsh_ss(x[b + 1].d), y[b + 1].d, _mm256_extract_epi32(hh, 4), 1.0f);
  }
  for (; b < n / 32; ++b) {
    const __m128i table = _mm_loadu_si128(reinterpret_cast<const __m128i*>(kIq4nlValues));
    const __m128i bytes = _mm_loadu_si128(reinterpret_cast<const __m128i*>(x[b].qs));
    const __m128i mask = _mm_set1_epi8(0x0F);
    const __m256i wts = _mm256_setr_m128i(_mm_shuffle_epi8(table, _mm_and_si128(bytes, mask)),
                                          _mm_shuffle_epi8(table, _mm_and_si128(_mm_srli_epi16(bytes, 4), mask)));
    const __m256i p = SignedDot(wts, LoadQ8(y[b].qs), ones);
    sum = AddBlock(sum, _cvtsh_ss(x[b].d), y[b].d, avx2::HorizontalSumEpi32(p), 1.0f);
  }
  return sum;
}

}  // namespace

DotFn IqDot(GgmlType type, Isa isa) {
  const bool simd = isa != Isa::kScalar;
  switch (type) {
    case GgmlType::kIQ2_XXS:
      return simd ? DotIq2xxsAvx2 : DotIq2xxsScalar;
    case GgmlType::kIQ2_XS:
      return simd ? DotIq2xsAvx2 : DotIq2xsScalar;
    case GgmlType::kIQ2_S:
      return simd ? DotIq2sAvx2 : DotIq2sScalar;
    case GgmlType::kIQ3_XXS:
      return simd ? DotIq3xxsAvx2 : DotIq3xxsScalar;
    case GgmlType::kIQ3_S:
      return simd ? DotIq3sAvx2 : DotIq3sScalar;
    case GgmlType::kIQ1_S:
      return simd ? DotIq1sAvx2 : DotIq1sScalar;
    case GgmlType::kIQ1_M:
      return simd ? DotIq1mAvx2 : DotIq1mScalar;
    case GgmlType::kIQ4_NL:
      return simd ? DotIq4nlAvx2 : DotIq4nlScalar;
    case GgmlType::kIQ4_XS:
      return simd ? DotIq4xsAvx2 : DotIq4xsScalar;
    default:
      return nullptr;
  }
}

}  // namespace strata::engine::kernels

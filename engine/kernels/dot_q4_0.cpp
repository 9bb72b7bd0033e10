// Q4_0 weights (one f16 scale per 32 values, 4-bit codes stored with +8) against
// grouped 8-bit activations (ActQ8Group). Every AVX2 path computes, per row, exactly
//
//   isum_b = sum over block b of (code - 8) * a           (exact, in integers)
//   acc    = fma(dw_b * da_b, float(isum_b), acc)           for b = 0, 1, ... in order
//
// so a token's logits do not depend on whether it was decoded alone or prefilled with
// others, nor on which rows shared a panel. The paths differ in how they reach isum:
//  - the row panel for one token reads eight rows straight from the file's layout,
//    two rows per register, and turns the eight rows' partial sums into one register
//    of eight isums with three horizontal adds per block;
//  - the panel for several tokens first transposes eight rows' codes (once) so that
//    one broadcast of 4 activation bytes meets all eight rows: one maddubs and one
//    16-bit add per 4 values of 8 rows, reused for every token;
//  - the single dot (one row, for callers that need one) sums each block across its
//    register.
// The codes enter maddubs unsigned (0..15) and the +8 is taken off as 8 * the block's
// activation sum. With |a| <= 127, eight maddubs pair sums fit in int16 (8 * 2 * 15 *
// 127 = 30480), so a block's 16-bit partial sums need no widening until its end.
#include <algorithm>
#include <vector>

#include "engine/kernels/kernels.h"
#include "engine/kernels/matmul.h"
#include "engine/kernels/simd_avx2.h"
#include "engine/quant/fp16.h"
#include "engine/quant/quant_blocks.h"

namespace strata::engine::kernels {
namespace {

float DotQ4_0Scalar(int64_t n, const void* w, const void* a) {
  const auto* x = static_cast<const BlockQ4_0*>(w);
  const auto* g = static_cast<const ActQ8Group*>(a);
  float sum = 0;
  for (int64_t b = 0; b < n / 32; ++b) {
    const ActQ8Group& y = g[b / 8];
    const int8_t* q = y.qs[b % 8];
    int isum = 0;
    for (int j = 0; j < 16; ++j) {
      isum += ((x[b].qs[j] & 0x0F) - 8) * q[j];
      isum += ((x[b].qs[j] >> 4) - 8) * q[j + 16];
    }
    sum += HalfToFloat(x[b].d) * y.d[b % 8] * static_cast<float>(isum);
  }
  return sum;
}

// acc = fma(scale, float(isum), acc), one rounding, as the vector paths do it.
STRATA_AVX2 inline float Fma(float scale, int isum, float acc) {
  return _mm_cvtss_f32(_mm_fmadd_ss(_mm_set_ss(scale), _mm_set_ss(static_cast<float>(isum)),
                                    _mm_set_ss(acc)));
}

STRATA_AVX2 float DotQ4_0Avx2(int64_t n, const void* w, const void* a) {
  const auto* x = static_cast<const BlockQ4_0*>(w);
  const auto* g = static_cast<const ActQ8Group*>(a);
  const __m256i ones = _mm256_set1_epi16(1);
  float acc = 0;
  for (int64_t b = 0; b < n / 32; ++b) {
    const ActQ8Group& y = g[b / 8];
    const int j = static_cast<int>(b % 8);
    const __m256i codes = avx2::BytesFromNibbles32(x[b].qs);
    const __m256i q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(y.qs[j]));
    const int isum = avx2::HorizontalSumEpi32(_mm256_madd_epi16(_mm256_maddubs_epi16(codes, q), ones)) -
                     8 * y.sums[j];
    acc = Fma(_cvtsh_ss(x[b].d) * y.d[j], isum, acc);
  }
  return acc;
}

// Eight rows (row0 .. row0 + 7; pointers past `rows` repeat row0 and their lanes are
// dropped) against one token, straight from the file's layout.
STRATA_AVX2 __m256 RowsOfEight(const WeightMatrix& w, int64_t row0, int64_t rows,
                               const ActQ8Group* g) {
  const BlockQ4_0* row[8];
  for (int i = 0; i < 8; ++i)
    row[i] = reinterpret_cast<const BlockQ4_0*>(w.row(row0 + (i < rows ? i : 0)));
  const __m256i ones = _mm256_set1_epi16(1), low4 = _mm256_set1_epi8(0x0F);
  __m256 acc = _mm256_setzero_ps();
  const int64_t blocks = w.cols / 32;
  // The eight rows are read as eight interleaved streams, which the hardware prefetcher
  // follows poorly from DRAM; fetch the panel after next (contiguous when rows are) a
  // few lines per block instead, into L2: into L1 measured 25-35% slower from DRAM.
  const auto* next = reinterpret_cast<const char*>(w.row(row0 + 16));
  const int64_t next_lines = static_cast<int64_t>(8 * w.row_bytes / 64);
  const int64_t lines_per_block = (next_lines + blocks - 1) / blocks;
  for (int64_t b = 0; b < blocks; ++b) {
    for (int64_t l = b * lines_per_block; l < std::min(next_lines, (b + 1) * lines_per_block); ++l)
      _mm_prefetch(next + 64 * l, _MM_HINT_T1);
    const ActQ8Group& y = g[b / 8];
    const int j = static_cast<int>(b % 8);
    const __m128i* q = reinterpret_cast<const __m128i*>(y.qs[j]);
    const __m256i a_lo = _mm256_broadcastsi128_si256(_mm_loadu_si128(q));
    const __m256i a_hi = _mm256_broadcastsi128_si256(_mm_loadu_si128(q + 1));
    __m256i s16[4];
    for (int p = 0; p < 4; ++p) {  // rows p (low half) and p + 4 (high half)
      const __m256i raw = _mm256_inserti128_si256(
          _mm256_castsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(row[p][b].qs))),
          _mm_loadu_si128(reinterpret_cast<const __m128i*>(row[p + 4][b].qs)), 1);
      s16[p] = _mm256_add_epi16(
          _mm256_maddubs_epi16(_mm256_and_si256(raw, low4), a_lo),
          _mm256_maddubs_epi16(_mm256_and_si256(_mm256_srli_epi16(raw, 4), low4), a_hi));
    }
    // Each 16-bit lane holds 4 products (|sum| <= 7620); two pairwise adds leave 16
    // products per lane (<= 30480, no overflow) in the order [row0 row1 row2 row3 |
    // row4 row5 row6 row7], two lanes each; madd widens and adds the last pair.
    const __m256i per_row = _mm256_madd_epi16(
        _mm256_hadd_epi16(_mm256_hadd_epi16(s16[0], s16[1]), _mm256_hadd_epi16(s16[2], s16[3])),
        ones);
    const __m256i isum = _mm256_sub_epi32(per_row, _mm256_set1_epi32(8 * y.sums[j]));
    // Eight scalar loads: a gather of the 18-byte-strided scales measured slower here.
    const __m256 dw = _mm256_cvtph_ps(_mm_setr_epi16(
        static_cast<short>(row[0][b].d), static_cast<short>(row[1][b].d),
        static_cast<short>(row[2][b].d), static_cast<short>(row[3][b].d),
        static_cast<short>(row[4][b].d), static_cast<short>(row[5][b].d),
        static_cast<short>(row[6][b].d), static_cast<short>(row[7][b].d)));
    const __m256 scale = _mm256_mul_ps(dw, _mm256_set1_ps(y.d[j]));
    acc = _mm256_fmadd_ps(scale, _mm256_cvtepi32_ps(isum), acc);
  }
  return acc;
}

// One block of an eight-row panel: the rows' scales, then the codes of values
// 4k..4k+3 of rows 0..7 in u[k] (4 bytes per row), so one broadcast of the
// activation's 4 bytes meets all eight rows.
struct PanelBlock {
  float d[8];
  uint8_t u[8][32];
};
static_assert(sizeof(PanelBlock) == 288);

// Transposes the unpacked codes of up to eight rows of block b into `out`; rows past
// `rows` are zero.
STRATA_AVX2 void PackPanelBlock(const WeightMatrix& w, int64_t row0, int64_t rows, int64_t b,
                                PanelBlock* out) {
  __m256i r[8];
  for (int i = 0; i < 8; ++i) {
    if (i < rows) {
      const auto* x = reinterpret_cast<const BlockQ4_0*>(w.row(row0 + i)) + b;
      r[i] = avx2::BytesFromNibbles32(x->qs);
      out->d[i] = _cvtsh_ss(x->d);
    } else {
      r[i] = _mm256_setzero_si256();
      out->d[i] = 0;
    }
  }
  // An 8x8 transpose of 32-bit elements: element k of row i goes to u[k] lane i.
  __m256i t[8], s[8];
  for (int i = 0; i < 8; i += 2) {
    t[i] = _mm256_unpacklo_epi32(r[i], r[i + 1]);
    t[i + 1] = _mm256_unpackhi_epi32(r[i], r[i + 1]);
  }
  for (int i = 0; i < 8; i += 4) {
    s[i] = _mm256_unpacklo_epi64(t[i], t[i + 2]);
    s[i + 1] = _mm256_unpackhi_epi64(t[i], t[i + 2]);
    s[i + 2] = _mm256_unpacklo_epi64(t[i + 1], t[i + 3]);
    s[i + 3] = _mm256_unpackhi_epi64(t[i + 1], t[i + 3]);
  }
  // s[0..3] hold rows 0-3 of elements {0,4}, {1,5}, {2,6}, {3,7}; s[4..7] rows 4-7.
  for (int k = 0; k < 4; ++k) {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out->u[k]),
                        _mm256_permute2x128_si256(s[k], s[k + 4], 0x20));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out->u[k + 4]),
                        _mm256_permute2x128_si256(s[k], s[k + 4], 0x31));
  }
}

// Block b (activation group g, lane j) of kTokens tokens, eight rows each, from a
// transposed panel block: acc[t] = fma(dw * da, float(isum), acc[t]).
template <int kTokens>
STRATA_AVX2 inline void PanelStep(const PanelBlock& p, const ActQ8Group* const* g, int j,
                                  __m256* acc) {
  __m256i s16[kTokens];
  for (int t = 0; t < kTokens; ++t) s16[t] = _mm256_setzero_si256();
  for (int k = 0; k < 8; ++k) {
    const __m256i codes = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p.u[k]));
    for (int t = 0; t < kTokens; ++t) {
      int32_t a4;
      std::memcpy(&a4, g[t]->qs[j] + 4 * k, sizeof(a4));
      s16[t] = _mm256_add_epi16(s16[t], _mm256_maddubs_epi16(codes, _mm256_set1_epi32(a4)));
    }
  }
  const __m256i ones = _mm256_set1_epi16(1);
  const __m256 dw = _mm256_loadu_ps(p.d);
  for (int t = 0; t < kTokens; ++t) {
    const __m256i isum = _mm256_sub_epi32(_mm256_madd_epi16(s16[t], ones),
                                          _mm256_set1_epi32(8 * g[t]->sums[j]));
    const __m256 scale = _mm256_mul_ps(dw, _mm256_set1_ps(g[t]->d[j]));
    acc[t] = _mm256_fmadd_ps(scale, _mm256_cvtepi32_ps(isum), acc[t]);
  }
}

STRATA_AVX2 inline void StoreRows(__m256 v, int64_t rows, float* dst) {
  if (rows == 8) {
    _mm256_storeu_ps(dst, v);
  } else {
    alignas(32) float lanes[8];
    _mm256_store_ps(lanes, v);
    std::copy_n(lanes, rows, dst);
  }
}

// kTokens tokens starting at t0 against one transposed panel.
template <int kTokens>
STRATA_AVX2 void PanelTokens(const PanelBlock* panel, int64_t blocks, const uint8_t* activations,
                             size_t stride, int64_t t0, int64_t rows, int64_t out_stride,
                             float* y) {
  const ActQ8Group* group[kTokens];
  __m256 acc[kTokens];
  for (int t = 0; t < kTokens; ++t) acc[t] = _mm256_setzero_ps();
  for (int64_t b = 0; b < blocks; ++b) {
    for (int t = 0; t < kTokens; ++t) {
      group[t] = reinterpret_cast<const ActQ8Group*>(activations + (t0 + t) * stride) + b / 8;
    }
    PanelStep<kTokens>(panel[b], group, static_cast<int>(b % 8), acc);
  }
  for (int t = 0; t < kTokens; ++t) StoreRows(acc[t], rows, y + (t0 + t) * out_stride);
}

STRATA_AVX2 void PanelMatMulQ4_0Avx2(const WeightMatrix& w, int64_t row_begin, int64_t row_end,
                                     const uint8_t* activations, size_t stride, int64_t tokens,
                                     float* y) {
  const int64_t blocks = w.cols / 32;
  if (tokens < 3) {  // transposing costs more than it saves for one or two tokens
    for (int64_t row0 = row_begin; row0 < row_end; row0 += 8) {
      const int64_t rows = std::min<int64_t>(8, row_end - row0);
      for (int64_t t = 0; t < tokens; ++t) {
        const auto* g = reinterpret_cast<const ActQ8Group*>(activations + t * stride);
        StoreRows(RowsOfEight(w, row0, rows, g), rows, y + t * w.rows + row0);
      }
    }
    return;
  }
  thread_local std::vector<PanelBlock> panel;
  if (panel.size() < static_cast<size_t>(blocks)) panel.resize(static_cast<size_t>(blocks));
  for (int64_t row0 = row_begin; row0 < row_end; row0 += 8) {
    const int64_t rows = std::min<int64_t>(8, row_end - row0);
    for (int64_t b = 0; b < blocks; ++b) PackPanelBlock(w, row0, rows, b, &panel[b]);
    float* out = y + row0;
    int64_t t = 0;
    for (; t + 4 <= tokens; t += 4)
      PanelTokens<4>(panel.data(), blocks, activations, stride, t, rows, w.rows, out);
    for (; t < tokens; ++t)
      PanelTokens<1>(panel.data(), blocks, activations, stride, t, rows, w.rows, out);
  }
}

}  // namespace

DotFn Q4_0Dot(Isa isa) { return isa == Isa::kAvx2 ? DotQ4_0Avx2 : DotQ4_0Scalar; }

PanelMatMulFn Q4_0PanelMatMul(Isa isa) {
  return isa == Isa::kAvx2 ? PanelMatMulQ4_0Avx2 : nullptr;
}

}  // namespace strata::engine::kernels

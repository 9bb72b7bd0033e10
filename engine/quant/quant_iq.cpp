// The IQ family: dequantizers written from the formats' definitions (docs/QUANT_IQ.md)
// and plain quantizers. A quantizer picks each sub-block's scale from its largest
// magnitude, maps every weight to the nearest value level of its type's grid, and looks
// the resulting pattern up in a table of the nearest grid point (built once, by brute
// force over the grid). That is a real quantizer, and fast enough for make-model's
// multi-GiB models, but not llama.cpp's importance-weighted search: files strata writes
// in these types are valid and load in llama.cpp, with a larger error than its own.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "engine/quant/fp16.h"
#include "engine/quant/iq_grids.h"
#include "engine/quant/quant_blocks.h"
#include "engine/quant/quantize.h"

namespace strata::engine {
namespace {

// ----------------------------------------------------------------------------------
// The nearest grid point of a pattern of value levels.

class Codebook {
 public:
  // `value(i, j)`: value j (of `dim`) of grid entry i (of `n`).
  template <typename ValueFn>
  Codebook(int n, int dim, ValueFn value) : dim_(dim) {
    for (int i = 0; i < n; ++i) {
      for (int j = 0; j < dim; ++j) {
        const int v = static_cast<int>(value(i, j));
        if (std::find(levels_.begin(), levels_.end(), v) == levels_.end()) levels_.push_back(v);
      }
    }
    std::sort(levels_.begin(), levels_.end());
    const int L = static_cast<int>(levels_.size());
    int patterns = 1;
    for (int j = 0; j < dim; ++j) patterns *= L;
    nearest_.resize(static_cast<size_t>(patterns));
    std::vector<int> digits(static_cast<size_t>(dim));
    for (int p = 0; p < patterns; ++p) {
      for (int j = 0, q = p; j < dim; ++j, q /= L) digits[j] = levels_[q % L];
      int best = 0;
      long best_d = -1;
      for (int i = 0; i < n; ++i) {
        long d = 0;
        for (int j = 0; j < dim; ++j) {
          const long diff = static_cast<long>(static_cast<int>(value(i, j))) - digits[j];
          d += diff * diff;
        }
        if (best_d < 0 || d < best_d) best_d = d, best = i;
      }
      nearest_[p] = static_cast<uint16_t>(best);
    }
  }

  // The grid index nearest to m[0..dim), given in grid units.
  int Nearest(const float* m) const {
    const int L = static_cast<int>(levels_.size());
    int p = 0, scale = 1;
    for (int j = 0; j < dim_; ++j, scale *= L) p += NearestLevel(m[j]) * scale;
    return nearest_[p];
  }

 private:
  int NearestLevel(float m) const {
    int best = 0;
    for (int k = 1; k < static_cast<int>(levels_.size()); ++k) {
      if (std::fabs(m - levels_[k]) < std::fabs(m - levels_[best])) best = k;
    }
    return best;
  }

  int dim_;
  std::vector<int> levels_;
  std::vector<uint16_t> nearest_;
};

const Codebook& Iq2xxsBook() {
  static const Codebook b(256, 8, [](int i, int j) { return GridByte(kIq2xxsGrid[i], j); });
  return b;
}
const Codebook& Iq2xsBook() {
  static const Codebook b(512, 8, [](int i, int j) { return GridByte(kIq2xsGrid[i], j); });
  return b;
}
const Codebook& Iq2sBook() {
  static const Codebook b(1024, 8, [](int i, int j) { return GridByte(kIq2sGrid[i], j); });
  return b;
}
const Codebook& Iq1sBook() {
  static const Codebook b(2048, 8, [](int i, int j) {
    return static_cast<int>(static_cast<int8_t>(GridByte(kIq1sGrid[i], j)));
  });
  return b;
}
const Codebook& Iq3xxsBook() {
  static const Codebook b(256, 4, [](int i, int j) { return static_cast<int>((kIq3xxsGrid[i] >> (8 * j)) & 255); });
  return b;
}
const Codebook& Iq3sBook() {
  static const Codebook b(512, 4, [](int i, int j) { return static_cast<int>((kIq3sGrid[i] >> (8 * j)) & 255); });
  return b;
}

// ----------------------------------------------------------------------------------
// Scales. Sub-block scales are db = d * (2s + 1) * unit with s in [0, smax]; the
// super-scale d makes the largest wanted db reachable with s = smax.

float MaxAbs(const float* x, int n) {
  float m = 0;
  for (int i = 0; i < n; ++i) m = std::max(m, std::fabs(x[i]));
  return m;
}

// The f16 super-scale for sub-block scales `want` (already in value units per grid unit).
uint16_t SuperScale(const float* want, int count, float unit, int smax) {
  float m = 0;
  for (int i = 0; i < count; ++i) m = std::max(m, want[i]);
  return FloatToHalf(m / (unit * static_cast<float>(2 * smax + 1)));
}

int SubScale(float want, float d, float unit, int smax) {
  if (d <= 0) return 0;
  const int s = static_cast<int>(std::lround((want / (d * unit) - 1.0f) / 2.0f));
  return std::clamp(s, 0, smax);
}

// Grid units of |x[j]| at scale db.
void Magnitudes(const float* x, int n, float db, float* m) {
  const float inv = db > 0 ? 1.0f / db : 0.0f;
  for (int j = 0; j < n; ++j) m[j] = std::fabs(x[j]) * inv;
}

// Sign bits of x[0..8) (bit j: negative).
uint8_t SignBits(const float* x) {
  uint8_t s = 0;
  for (int j = 0; j < 8; ++j) s |= static_cast<uint8_t>((x[j] < 0) << j);
  return s;
}

// The 7-bit sign index of x[0..8): with an odd count of negatives, the weight of
// least magnitude takes the wrong sign (the format stores only even counts).
uint32_t SignIndex7(const float* x) {
  uint8_t s = SignBits(x);
  if (__builtin_popcount(s) & 1) {
    int k = 0;
    for (int j = 1; j < 8; ++j) {
      if (std::fabs(x[j]) < std::fabs(x[k])) k = j;
    }
    s ^= static_cast<uint8_t>(1 << k);
  }
  return s & 127;
}

int NearestIq4(float v) {
  int best = 0;
  for (int k = 1; k < 16; ++k) {
    if (std::fabs(v - kIq4nlValues[k]) < std::fabs(v - kIq4nlValues[best])) best = k;
  }
  return best;
}

// The value of largest magnitude, with its sign.
float SignedMax(const float* x, int n) {
  float m = 0;
  for (int i = 0; i < n; ++i) {
    if (std::fabs(x[i]) > std::fabs(m)) m = x[i];
  }
  return m;
}

}  // namespace

// ----------------------------------------------------------------------------------
// IQ2_XXS: per 32 values, 4 grid indices (8 bits) and 4 sign indices (7 bits) and a
// 4-bit scale: w = d * (0.5 + s) / 4 * grid * sign.

void DequantizeRowIq2xxs(const void* src, int64_t n, float* y) {
  const auto* x = static_cast<const BlockIq2xxs*>(src);
  for (int64_t b = 0; b < n / kQK_K; ++b) {
    const float d = HalfToFloat(x[b].d);
    for (int ib = 0; ib < 8; ++ib) {
      uint32_t aux[2];
      std::memcpy(aux, x[b].qs + 4 * ib, sizeof(aux));
      const float db = d * (0.5f + static_cast<float>(aux[1] >> 28)) * 0.25f;
      for (int l = 0; l < 4; ++l) {
        const uint64_t g = kIq2xxsGrid[(aux[0] >> (8 * l)) & 255];
        const uint8_t signs = SignsFromIndex7((aux[1] >> (7 * l)) & 127);
        for (int j = 0; j < 8; ++j) *y++ = db * GridByte(g, j) * ((signs >> j) & 1 ? -1.f : 1.f);
      }
    }
  }
}

void QuantizeRowIq2xxs(const float* src, int64_t n, void* dst) {
  auto* y = static_cast<BlockIq2xxs*>(dst);
  const Codebook& book = Iq2xxsBook();
  for (int64_t b = 0; b < n / kQK_K; ++b, src += kQK_K) {
    float want[8];
    for (int ib = 0; ib < 8; ++ib) want[ib] = MaxAbs(src + 32 * ib, 32) / 43.0f;
    y[b].d = SuperScale(want, 8, 0.125f, 15);
    const float d = HalfToFloat(y[b].d);
    for (int ib = 0; ib < 8; ++ib) {
      const int s = SubScale(want[ib], d, 0.125f, 15);
      const float db = d * (0.5f + static_cast<float>(s)) * 0.25f;
      uint32_t aux[2] = {0, static_cast<uint32_t>(s) << 28};
      for (int l = 0; l < 4; ++l) {
        const float* x = src + 32 * ib + 8 * l;
        float m[8];
        Magnitudes(x, 8, db, m);
        aux[0] |= static_cast<uint32_t>(book.Nearest(m)) << (8 * l);
        aux[1] |= SignIndex7(x) << (7 * l);
      }
      std::memcpy(y[b].qs + 4 * ib, aux, sizeof(aux));
    }
  }
}

// ----------------------------------------------------------------------------------
// IQ2_XS: per 8 values a 16-bit word, grid index (9 bits) | sign index << 9; per 16
// values a 4-bit scale.

void DequantizeRowIq2xs(const void* src, int64_t n, float* y) {
  const auto* x = static_cast<const BlockIq2xs*>(src);
  for (int64_t b = 0; b < n / kQK_K; ++b) {
    const float d = HalfToFloat(x[b].d);
    for (int ib = 0; ib < 8; ++ib) {
      const float db[2] = {d * (0.5f + static_cast<float>(x[b].scales[ib] & 15)) * 0.25f,
                           d * (0.5f + static_cast<float>(x[b].scales[ib] >> 4)) * 0.25f};
      for (int l = 0; l < 4; ++l) {
        const uint16_t q = x[b].qs[4 * ib + l];
        const uint64_t g = kIq2xsGrid[q & 511];
        const uint8_t signs = SignsFromIndex7(q >> 9);
        for (int j = 0; j < 8; ++j) *y++ = db[l / 2] * GridByte(g, j) * ((signs >> j) & 1 ? -1.f : 1.f);
      }
    }
  }
}

namespace {

// IQ2_XS and IQ2_S: a 4-bit scale per 16 values, a grid index and signs per 8;
// `store(block, ib, l, index, x)` writes one group's code the type's way.
template <typename Block, typename Store>
void QuantizeIq2Halves(const float* src, int64_t n, Block* y, const Codebook& book, Store store) {
  for (int64_t b = 0; b < n / kQK_K; ++b, src += kQK_K) {
    std::memset(&y[b], 0, sizeof(Block));
    float want[16];
    for (int h = 0; h < 16; ++h) want[h] = MaxAbs(src + 16 * h, 16) / 43.0f;
    y[b].d = SuperScale(want, 16, 0.125f, 15);
    const float d = HalfToFloat(y[b].d);
    for (int ib = 0; ib < 8; ++ib) {
      int s[2];
      for (int h = 0; h < 2; ++h) s[h] = SubScale(want[2 * ib + h], d, 0.125f, 15);
      y[b].scales[ib] = static_cast<uint8_t>(s[0] | (s[1] << 4));
      for (int l = 0; l < 4; ++l) {
        const float* x = src + 32 * ib + 8 * l;
        const float db = d * (0.5f + static_cast<float>(s[l / 2])) * 0.25f;
        float m[8];
        Magnitudes(x, 8, db, m);
        store(y[b], ib, l, book.Nearest(m), x);
      }
    }
  }
}

}  // namespace

void QuantizeRowIq2xs(const float* src, int64_t n, void* dst) {
  QuantizeIq2Halves(src, n, static_cast<BlockIq2xs*>(dst), Iq2xsBook(),
                    [](BlockIq2xs& y, int ib, int l, int index, const float* x) {
                      y.qs[4 * ib + l] = static_cast<uint16_t>(index | (SignIndex7(x) << 9));
                    });
}

// ----------------------------------------------------------------------------------
// IQ2_S: 10-bit grid indices (low bytes in qs, two high bits each in qh), a full sign
// byte per 8 values, per 16 values a 4-bit scale.

void DequantizeRowIq2s(const void* src, int64_t n, float* y) {
  const auto* x = static_cast<const BlockIq2s*>(src);
  for (int64_t b = 0; b < n / kQK_K; ++b) {
    const float d = HalfToFloat(x[b].d);
    const uint8_t* signs = x[b].qs + kQK_K / 8;
    for (int ib = 0; ib < 8; ++ib) {
      const float db[2] = {d * (0.5f + static_cast<float>(x[b].scales[ib] & 15)) * 0.25f,
                           d * (0.5f + static_cast<float>(x[b].scales[ib] >> 4)) * 0.25f};
      for (int l = 0; l < 4; ++l) {
        const int index = x[b].qs[4 * ib + l] | (((x[b].qh[ib] >> (2 * l)) & 3) << 8);
        const uint64_t g = kIq2sGrid[index];
        const uint8_t s = signs[4 * ib + l];
        for (int j = 0; j < 8; ++j) *y++ = db[l / 2] * GridByte(g, j) * ((s >> j) & 1 ? -1.f : 1.f);
      }
    }
  }
}

void QuantizeRowIq2s(const float* src, int64_t n, void* dst) {
  QuantizeIq2Halves(src, n, static_cast<BlockIq2s*>(dst), Iq2sBook(),
                    [](BlockIq2s& y, int ib, int l, int index, const float* x) {
                      y.qs[4 * ib + l] = static_cast<uint8_t>(index & 255);
                      y.qh[ib] |= static_cast<uint8_t>((index >> 8) << (2 * l));
                      y.qs[kQK_K / 8 + 4 * ib + l] = SignBits(x);
                    });
}

// ----------------------------------------------------------------------------------
// IQ3_XXS: 4-value grid points (8-bit indices), per 32 values a word of 4 sign indices
// and a 4-bit scale: w = d * (0.5 + s) / 2 * grid * sign.

void DequantizeRowIq3xxs(const void* src, int64_t n, float* y) {
  const auto* x = static_cast<const BlockIq3xxs*>(src);
  for (int64_t b = 0; b < n / kQK_K; ++b) {
    const float d = HalfToFloat(x[b].d);
    const uint8_t* qs = x[b].qs;
    for (int ib = 0; ib < 8; ++ib) {
      uint32_t aux;
      std::memcpy(&aux, x[b].qs + kQK_K / 4 + 4 * ib, sizeof(aux));
      const float db = d * (0.5f + static_cast<float>(aux >> 28)) * 0.5f;
      for (int l = 0; l < 4; ++l) {
        const uint8_t signs = SignsFromIndex7((aux >> (7 * l)) & 127);
        const uint32_t g[2] = {kIq3xxsGrid[qs[8 * ib + 2 * l]], kIq3xxsGrid[qs[8 * ib + 2 * l + 1]]};
        for (int j = 0; j < 8; ++j) {
          *y++ = db * static_cast<float>((g[j / 4] >> (8 * (j % 4))) & 255) * ((signs >> j) & 1 ? -1.f : 1.f);
        }
      }
    }
  }
}

void QuantizeRowIq3xxs(const float* src, int64_t n, void* dst) {
  auto* y = static_cast<BlockIq3xxs*>(dst);
  const Codebook& book = Iq3xxsBook();
  for (int64_t b = 0; b < n / kQK_K; ++b, src += kQK_K) {
    float want[8];
    for (int ib = 0; ib < 8; ++ib) want[ib] = MaxAbs(src + 32 * ib, 32) / 62.0f;
    y[b].d = SuperScale(want, 8, 0.25f, 15);
    const float d = HalfToFloat(y[b].d);
    for (int ib = 0; ib < 8; ++ib) {
      const int s = SubScale(want[ib], d, 0.25f, 15);
      const float db = d * (0.5f + static_cast<float>(s)) * 0.5f;
      uint32_t aux = static_cast<uint32_t>(s) << 28;
      for (int l = 0; l < 4; ++l) {
        const float* x = src + 32 * ib + 8 * l;
        float m[8];
        Magnitudes(x, 8, db, m);
        y[b].qs[8 * ib + 2 * l] = static_cast<uint8_t>(book.Nearest(m));
        y[b].qs[8 * ib + 2 * l + 1] = static_cast<uint8_t>(book.Nearest(m + 4));
        aux |= SignIndex7(x) << (7 * l);
      }
      std::memcpy(y[b].qs + kQK_K / 4 + 4 * ib, &aux, sizeof(aux));
    }
  }
}

// ----------------------------------------------------------------------------------
// IQ3_S: 9-bit indices into 4-value grid points, a sign bit per weight, per 32 values
// a 4-bit scale: w = d * (1 + 2s) * grid * sign.

void DequantizeRowIq3s(const void* src, int64_t n, float* y) {
  const auto* x = static_cast<const BlockIq3s*>(src);
  for (int64_t b = 0; b < n / kQK_K; ++b) {
    const float d = HalfToFloat(x[b].d);
    for (int ib = 0; ib < 8; ++ib) {
      const int s = (x[b].scales[ib / 2] >> (4 * (ib % 2))) & 15;
      const float db = d * static_cast<float>(1 + 2 * s);
      for (int k = 0; k < 8; ++k) {
        const int index = x[b].qs[8 * ib + k] | (((x[b].qh[ib] >> k) & 1) << 8);
        const uint32_t g = kIq3sGrid[index];
        const uint8_t signs = x[b].signs[4 * ib + k / 2];
        for (int j = 0; j < 4; ++j) {
          const int bit = 4 * (k % 2) + j;
          *y++ = db * static_cast<float>((g >> (8 * j)) & 255) * ((signs >> bit) & 1 ? -1.f : 1.f);
        }
      }
    }
  }
}

void QuantizeRowIq3s(const float* src, int64_t n, void* dst) {
  auto* y = static_cast<BlockIq3s*>(dst);
  const Codebook& book = Iq3sBook();
  for (int64_t b = 0; b < n / kQK_K; ++b, src += kQK_K) {
    std::memset(&y[b], 0, sizeof(BlockIq3s));
    float want[8];
    for (int ib = 0; ib < 8; ++ib) want[ib] = MaxAbs(src + 32 * ib, 32) / 15.0f;
    y[b].d = SuperScale(want, 8, 1.0f, 15);
    const float d = HalfToFloat(y[b].d);
    for (int ib = 0; ib < 8; ++ib) {
      const int s = SubScale(want[ib], d, 1.0f, 15);
      y[b].scales[ib / 2] |= static_cast<uint8_t>(s << (4 * (ib % 2)));
      const float db = d * static_cast<float>(1 + 2 * s);
      for (int k = 0; k < 8; ++k) {
        float m[4];
        Magnitudes(src + 32 * ib + 4 * k, 4, db, m);
        const int index = book.Nearest(m);
        y[b].qs[8 * ib + k] = static_cast<uint8_t>(index & 255);
        y[b].qh[ib] |= static_cast<uint8_t>((index >> 8) << k);
      }
      for (int l = 0; l < 4; ++l) y[b].signs[4 * ib + l] = SignBits(src + 32 * ib + 8 * l);
    }
  }
}

// ----------------------------------------------------------------------------------
// IQ1_S: 11-bit indices into 8-value ternary grid points, per 32 values a 3-bit scale
// and a delta sign: w = d * (2s + 1) * (grid +- 1/8).

void DequantizeRowIq1s(const void* src, int64_t n, float* y) {
  const auto* x = static_cast<const BlockIq1s*>(src);
  for (int64_t b = 0; b < n / kQK_K; ++b) {
    const float d = HalfToFloat(x[b].d);
    for (int ib = 0; ib < 8; ++ib) {
      const uint16_t qh = x[b].qh[ib];
      const float dl = d * static_cast<float>(2 * ((qh >> 12) & 7) + 1);
      const float delta = qh & 0x8000 ? -kIq1Delta : kIq1Delta;
      for (int l = 0; l < 4; ++l) {
        const uint64_t g = kIq1sGrid[x[b].qs[4 * ib + l] | (((qh >> (3 * l)) & 7) << 8)];
        for (int j = 0; j < 8; ++j) *y++ = dl * (static_cast<int8_t>(GridByte(g, j)) + delta);
      }
    }
  }
}

namespace {

// Grid units of x[j] / dl - delta, for the ternary grid (signed).
void Iq1Units(const float* x, float dl, float delta, float* m) {
  const float inv = dl > 0 ? 1.0f / dl : 0.0f;
  for (int j = 0; j < 8; ++j) m[j] = x[j] * inv - delta;
}

float Sum(const float* x, int n) {
  float s = 0;
  for (int i = 0; i < n; ++i) s += x[i];
  return s;
}

}  // namespace

void QuantizeRowIq1s(const float* src, int64_t n, void* dst) {
  auto* y = static_cast<BlockIq1s*>(dst);
  const Codebook& book = Iq1sBook();
  for (int64_t b = 0; b < n / kQK_K; ++b, src += kQK_K) {
    float want[8];
    for (int ib = 0; ib < 8; ++ib) want[ib] = MaxAbs(src + 32 * ib, 32) / (1.0f + kIq1Delta);
    y[b].d = SuperScale(want, 8, 1.0f, 7);
    const float d = HalfToFloat(y[b].d);
    for (int ib = 0; ib < 8; ++ib) {
      const int s = SubScale(want[ib], d, 1.0f, 7);
      const float dl = d * static_cast<float>(2 * s + 1);
      const bool negative = Sum(src + 32 * ib, 32) < 0;
      uint16_t qh = static_cast<uint16_t>((s << 12) | (negative ? 0x8000 : 0));
      for (int l = 0; l < 4; ++l) {
        float m[8];
        Iq1Units(src + 32 * ib + 8 * l, dl, negative ? -kIq1Delta : kIq1Delta, m);
        const int index = book.Nearest(m);
        y[b].qs[4 * ib + l] = static_cast<uint8_t>(index & 255);
        qh |= static_cast<uint16_t>((index >> 8) << (3 * l));
      }
      y[b].qh[ib] = qh;
    }
  }
}

// ----------------------------------------------------------------------------------
// IQ1_M: as IQ1_S's grid, with a 3-bit scale per 16 values, a delta sign per 8, and the
// f16 super-scale spread over the top nibbles of the four scale words.

float Iq1mSuperScale(const BlockIq1m& x) {
  uint16_t sc[4];
  std::memcpy(sc, x.scales, sizeof(sc));
  const uint16_t h = static_cast<uint16_t>((sc[0] >> 12) | ((sc[1] >> 8) & 0x00f0) |
                                           ((sc[2] >> 4) & 0x0f00) | (sc[3] & 0xf000));
  return HalfToFloat(h);
}

void DequantizeRowIq1m(const void* src, int64_t n, float* y) {
  const auto* x = static_cast<const BlockIq1m*>(src);
  for (int64_t b = 0; b < n / kQK_K; ++b) {
    const float d = Iq1mSuperScale(x[b]);
    uint16_t sc[4];
    std::memcpy(sc, x[b].scales, sizeof(sc));
    for (int ib = 0; ib < 8; ++ib) {
      for (int l = 0; l < 4; ++l) {
        const int s = (sc[ib / 2] >> (6 * (ib % 2) + 3 * (l / 2))) & 7;
        const float dl = d * static_cast<float>(2 * s + 1);
        const uint8_t qh = static_cast<uint8_t>(x[b].qh[2 * ib + l / 2] >> (4 * (l % 2)));
        const float delta = qh & 8 ? -kIq1Delta : kIq1Delta;
        const uint64_t g = kIq1sGrid[x[b].qs[4 * ib + l] | ((qh & 7) << 8)];
        for (int j = 0; j < 8; ++j) *y++ = dl * (static_cast<int8_t>(GridByte(g, j)) + delta);
      }
    }
  }
}

void QuantizeRowIq1m(const float* src, int64_t n, void* dst) {
  auto* y = static_cast<BlockIq1m*>(dst);
  const Codebook& book = Iq1sBook();
  for (int64_t b = 0; b < n / kQK_K; ++b, src += kQK_K) {
    std::memset(&y[b], 0, sizeof(BlockIq1m));
    float want[16];
    for (int h = 0; h < 16; ++h) want[h] = MaxAbs(src + 16 * h, 16) / (1.0f + kIq1Delta);
    const uint16_t dh = SuperScale(want, 16, 1.0f, 7);
    const float d = HalfToFloat(dh);
    uint16_t sc[4] = {0, 0, 0, 0};
    for (int ib = 0; ib < 8; ++ib) {
      for (int l = 0; l < 4; ++l) {
        const float* x = src + 32 * ib + 8 * l;
        const int s = SubScale(want[2 * ib + l / 2], d, 1.0f, 7);
        if (l % 2 == 0) sc[ib / 2] |= static_cast<uint16_t>(s << (6 * (ib % 2) + 3 * (l / 2)));
        const float dl = d * static_cast<float>(2 * s + 1);
        const bool negative = Sum(x, 8) < 0;
        float m[8];
        Iq1Units(x, dl, negative ? -kIq1Delta : kIq1Delta, m);
        const int index = book.Nearest(m);
        y[b].qs[4 * ib + l] = static_cast<uint8_t>(index & 255);
        const int nibble = (index >> 8) | (negative ? 8 : 0);
        y[b].qh[2 * ib + l / 2] |= static_cast<uint8_t>(nibble << (4 * (l % 2)));
      }
    }
    for (int w = 0; w < 4; ++w) sc[w] |= static_cast<uint16_t>(((dh >> (4 * w)) & 15) << 12);
    std::memcpy(y[b].scales, sc, sizeof(sc));
  }
}

// ----------------------------------------------------------------------------------
// IQ4_NL (blocks of 32, one f16 scale) and IQ4_XS (super-blocks of 256, 6-bit
// sub-scales offset by 32): 4-bit codes into the 16 non-uniform kIq4nlValues.

void DequantizeRowIq4nl(const void* src, int64_t n, float* y) {
  const auto* x = static_cast<const BlockIq4nl*>(src);
  for (int64_t b = 0; b < n / kQK4_NL; ++b, y += kQK4_NL) {
    const float d = HalfToFloat(x[b].d);
    for (int j = 0; j < 16; ++j) {
      y[j] = d * kIq4nlValues[x[b].qs[j] & 15];
      y[j + 16] = d * kIq4nlValues[x[b].qs[j] >> 4];
    }
  }
}

void QuantizeRowIq4nl(const float* src, int64_t n, void* dst) {
  auto* y = static_cast<BlockIq4nl*>(dst);
  for (int64_t b = 0; b < n / kQK4_NL; ++b, src += kQK4_NL) {
    // The value of largest magnitude lands on the code of -127.
    y[b].d = FloatToHalf(SignedMax(src, 32) / static_cast<float>(kIq4nlValues[0]));
    const float d = HalfToFloat(y[b].d);
    const float inv = d != 0 ? 1.0f / d : 0.0f;
    for (int j = 0; j < 16; ++j) {
      y[b].qs[j] = static_cast<uint8_t>(NearestIq4(src[j] * inv) | (NearestIq4(src[j + 16] * inv) << 4));
    }
  }
}

void DequantizeRowIq4xs(const void* src, int64_t n, float* y) {
  const auto* x = static_cast<const BlockIq4xs*>(src);
  for (int64_t b = 0; b < n / kQK_K; ++b) {
    const float d = HalfToFloat(x[b].d);
    for (int ib = 0; ib < 8; ++ib, y += 32) {
      const int ls = ((x[b].scales_l[ib / 2] >> (4 * (ib % 2))) & 15) | (((x[b].scales_h >> (2 * ib)) & 3) << 4);
      const float dl = d * static_cast<float>(ls - 32);
      const uint8_t* qs = x[b].qs + 16 * ib;
      for (int j = 0; j < 16; ++j) {
        y[j] = dl * kIq4nlValues[qs[j] & 15];
        y[j + 16] = dl * kIq4nlValues[qs[j] >> 4];
      }
    }
  }
}

void QuantizeRowIq4xs(const float* src, int64_t n, void* dst) {
  auto* y = static_cast<BlockIq4xs*>(dst);
  for (int64_t b = 0; b < n / kQK_K; ++b, src += kQK_K) {
    std::memset(&y[b], 0, sizeof(BlockIq4xs));
    float want[8], largest = 0;
    for (int ib = 0; ib < 8; ++ib) {
      want[ib] = SignedMax(src + 32 * ib, 32) / static_cast<float>(kIq4nlValues[0]);
      largest = std::max(largest, std::fabs(want[ib]));
    }
    y[b].d = FloatToHalf(largest / 31.0f);
    const float d = HalfToFloat(y[b].d);
    for (int ib = 0; ib < 8; ++ib) {
      const int ls = d > 0 ? std::clamp(static_cast<int>(std::lround(want[ib] / d)) + 32, 0, 63) : 32;
      y[b].scales_l[ib / 2] |= static_cast<uint8_t>((ls & 15) << (4 * (ib % 2)));
      y[b].scales_h |= static_cast<uint16_t>((ls >> 4) << (2 * ib));
      const float dl = d * static_cast<float>(ls - 32);
      const float inv = dl != 0 ? 1.0f / dl : 0.0f;
      const float* x = src + 32 * ib;
      for (int j = 0; j < 16; ++j) {
        y[b].qs[16 * ib + j] =
            static_cast<uint8_t>(NearestIq4(x[j] * inv) | (NearestIq4(x[j + 16] * inv) << 4));
      }
    }
  }
}

}  // namespace strata::engine

// Dot products between one quantised weight row and one prepared activation vector,
// the building block of every matrix-vector and matrix-matrix product in strata.
//
// As in ggml, activations are quantised once per vector into the format the weight
// type's integer dot product consumes (ActivationFormat): 8-bit blocks of 32 with a
// float scale for Q4_0/Q5_0/Q8_0, 8-bit super-blocks of 256 with per-16 sums for the
// k-quants, plain f32 for F32/F16/BF16. Each weight type has a plain scalar dot and,
// where the CPU has it, an AVX2+FMA+F16C dot chosen at run time, so one binary runs
// on any x86-64. The scalar dot is the reference the fast one is tested against.
// Pure functions; thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>

#include "storage/ggml_types.h"

namespace strata::engine::kernels {

enum class Isa { kScalar, kAvx2 };

// The best instruction set this CPU supports (probed once).
Isa BestIsa();
const char* IsaName(Isa isa);

enum class ActivationFormat {
  kF32,  // float[n]
  kQ8,   // blocks of 32: {float d; int8 q[32]}
  kQ8K,  // blocks of 256: {float d; int8 q[256]; int16 sums[16]}
  kQ8Group,  // blocks of 32 in groups of 8 (ActQ8Group), the last group zero-padded
};

// Activation layouts (internal to strata; not GGML block types).
struct ActQ8Block {
  float d;
  int8_t qs[32];
};
static_assert(sizeof(ActQ8Block) == 36);
struct ActQ8KBlock {
  float d;
  int8_t qs[256];
  int16_t bsums[16];  // sum of each group of 16 quants
};
static_assert(sizeof(ActQ8KBlock) == 292);
// The 8-bit blocks of 32 of kQ8 (same scales, same quants), eight to a group with their
// scales and sums side by side, so a kernel loads eight blocks' worth with one
// instruction each. Blocks past the end of the vector are all zero.
struct ActQ8Group {
  float d[8];
  int32_t sums[8];  // sum of each block's 32 quants
  int8_t qs[8][32];
};
static_assert(sizeof(ActQ8Group) == 320);

// True if strata has a dot product for weights of `type`.
bool HasDot(storage::GgmlType type);
ActivationFormat ActivationFormatFor(storage::GgmlType type);
// Bytes a prepared activation of n values takes.
size_t ActivationBytes(ActivationFormat format, int64_t n);
// Quantises (or copies) x[n] into `out`. REQUIRES: n is a multiple of the block size.
void PrepareActivation(ActivationFormat format, const float* x, int64_t n, void* out);

// dot(weight row of n values, prepared activation)
using DotFn = float (*)(int64_t n, const void* weight_row, const void* activation);
// The dot for `type` on `isa` (falls back to scalar where no SIMD version exists).
// REQUIRES: HasDot(type).
DotFn GetDot(storage::GgmlType type, Isa isa);

// dot of one weight row with four prepared activations at once (out[4]): the weight
// blocks are unpacked once for all four. Per activation it performs exactly the
// operations of the single dot, so results are bit-identical to four GetDot calls.
// nullptr where no such kernel exists (callers fall back to GetDot).
using Dot4Fn = void (*)(int64_t n, const void* weight_row, const void* const* activations,
                        float* out);
Dot4Fn GetDot4(storage::GgmlType type, Isa isa);

// Rows [row_begin, row_end) of `w` against `tokens` prepared activations `stride`
// bytes apart: y[t * w.rows + r]. Works on panels of eight rows at a time; each value
// is bit-identical to the single dot of its row and token. nullptr where no such
// kernel exists.
struct WeightMatrix;
using PanelMatMulFn = void (*)(const WeightMatrix& w, int64_t row_begin, int64_t row_end,
                               const uint8_t* activations, size_t stride, int64_t tokens,
                               float* y);
PanelMatMulFn GetPanelMatMul(storage::GgmlType type, Isa isa);

// Per-family tables (one translation unit each).
DotFn FloatDot(storage::GgmlType type, Isa isa);   // F32, F16, BF16
DotFn LegacyDot(storage::GgmlType type, Isa isa);  // Q4_0, Q4_1, Q5_0, Q5_1, Q8_0
DotFn KQuantDot(storage::GgmlType type, Isa isa);  // Q4_K, Q5_K, Q6_K
Dot4Fn LegacyDot4(storage::GgmlType type, Isa isa);
Dot4Fn KQuantDot4(storage::GgmlType type, Isa isa);
DotFn Fp4Dot(storage::GgmlType type, Isa isa);  // MXFP4
Dot4Fn Fp4Dot4(storage::GgmlType type, Isa isa);
DotFn IqDot(storage::GgmlType type, Isa isa);  // IQ1_S .. IQ4_XS
DotFn Q4_0Dot(Isa isa);  // Q4_0 against kQ8Group activations
PanelMatMulFn Q4_0PanelMatMul(Isa isa);

}  // namespace strata::engine::kernels

// Reference (scalar) quantizers and dequantizers: F32, F16, BF16, Q8_0, Q4_0, Q4_1,
// Q5_0, Q5_1, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, MXFP4 and the IQ family (IQ1_S, IQ1_M,
// IQ2_XXS, IQ2_XS, IQ2_S, IQ3_XXS, IQ3_S, IQ4_NL, IQ4_XS; quant_iq.cpp says how those
// choose their codes). Block layouts are ggml's, byte for byte,
// so files load in llama.cpp and its files load here. Quantizers choose scales from
// each block's range (Q4_K: per-32 scale and min, 6-bit quantised against a per-256
// super-scale); they are plain and deterministic, not ggml's iterative search.
// Pure functions; thread-safe.
#pragma once

#include <cstdint>

#include "storage/ggml_types.h"
#include "util/status.h"

namespace strata::engine {

// True for the types QuantizeRow/DequantizeRow implement.
bool CanQuantize(storage::GgmlType type);
bool CanDequantize(storage::GgmlType type);

// Encodes `n` floats (REQUIRES: a multiple of the type's block size) into `dst`, which
// holds RowBytes(type, n) bytes.
void QuantizeRow(storage::GgmlType type, const float* src, int64_t n, void* dst);
void DequantizeRow(storage::GgmlType type, const void* src, int64_t n, float* dst);

// Per-family entry points (one translation unit each).
void QuantizeRowQ8_0(const float* src, int64_t n, void* dst);
void QuantizeRowQ4_0(const float* src, int64_t n, void* dst);
void QuantizeRowQ5_0(const float* src, int64_t n, void* dst);
void QuantizeRowQ4_K(const float* src, int64_t n, void* dst);
void QuantizeRowQ4_1(const float* src, int64_t n, void* dst);
void QuantizeRowQ5_1(const float* src, int64_t n, void* dst);
void QuantizeRowQ5_K(const float* src, int64_t n, void* dst);
void QuantizeRowQ2_K(const float* src, int64_t n, void* dst);
void QuantizeRowQ3_K(const float* src, int64_t n, void* dst);
void DequantizeRowQ2_K(const void* src, int64_t n, float* dst);
void DequantizeRowQ3_K(const void* src, int64_t n, float* dst);
// Q3_K's 16 six-bit scales (minus their +32 offset) from the 12 packed bytes.
void UnpackQ3KScales(const uint8_t* packed, int8_t* scales);
void QuantizeRowQ6_K(const float* src, int64_t n, void* dst);
void DequantizeRowQ4_1(const void* src, int64_t n, float* dst);
void DequantizeRowQ5_1(const void* src, int64_t n, float* dst);
void DequantizeRowQ5_K(const void* src, int64_t n, float* dst);
void DequantizeRowQ6_K(const void* src, int64_t n, float* dst);
void DequantizeRowQ8_0(const void* src, int64_t n, float* dst);
void DequantizeRowQ4_0(const void* src, int64_t n, float* dst);
void DequantizeRowQ5_0(const void* src, int64_t n, float* dst);
void DequantizeRowQ4_K(const void* src, int64_t n, float* dst);
void QuantizeRowMxfp4(const float* src, int64_t n, void* dst);
void DequantizeRowMxfp4(const void* src, int64_t n, float* dst);
#define STRATA_IQ_ROW_FUNCTIONS(Name)                            \
  void QuantizeRow##Name(const float* src, int64_t n, void* dst); \
  void DequantizeRow##Name(const void* src, int64_t n, float* dst);
STRATA_IQ_ROW_FUNCTIONS(Iq2xxs)
STRATA_IQ_ROW_FUNCTIONS(Iq2xs)
STRATA_IQ_ROW_FUNCTIONS(Iq2s)
STRATA_IQ_ROW_FUNCTIONS(Iq3xxs)
STRATA_IQ_ROW_FUNCTIONS(Iq3s)
STRATA_IQ_ROW_FUNCTIONS(Iq1s)
STRATA_IQ_ROW_FUNCTIONS(Iq1m)
STRATA_IQ_ROW_FUNCTIONS(Iq4nl)
STRATA_IQ_ROW_FUNCTIONS(Iq4xs)
#undef STRATA_IQ_ROW_FUNCTIONS
// 2^(e-127), the E8M0 scale (e = 255, NaN, is the caller's to reject).
float E8m0ToFloat(uint8_t e);

}  // namespace strata::engine

// The GGML tensor type table: id, name, and block geometry (elements and bytes per
// block) for every type a GGUF file may carry. Knowing the geometry is enough to size
// and locate any tensor, even one whose arithmetic strata does not implement yet.
// Pure data; thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace strata::storage {

enum class GgmlType : uint32_t {
  kF32 = 0,
  kF16 = 1,
  kQ4_0 = 2,
  kQ4_1 = 3,
  kQ5_0 = 6,
  kQ5_1 = 7,
  kQ8_0 = 8,
  kQ8_1 = 9,
  kQ2_K = 10,
  kQ3_K = 11,
  kQ4_K = 12,
  kQ5_K = 13,
  kQ6_K = 14,
  kQ8_K = 15,
  kIQ2_XXS = 16,
  kIQ2_XS = 17,
  kIQ3_XXS = 18,
  kIQ1_S = 19,
  kIQ4_NL = 20,
  kIQ3_S = 21,
  kIQ2_S = 22,
  kIQ4_XS = 23,
  kI8 = 24,
  kI16 = 25,
  kI32 = 26,
  kI64 = 27,
  kF64 = 28,
  kIQ1_M = 29,
  kBF16 = 30,
  kTQ1_0 = 34,
  kTQ2_0 = 35,
  kMXFP4 = 39,
  kNVFP4 = 40,
};

struct GgmlTypeInfo {
  GgmlType type;
  std::string_view name;  // as ggml prints it: "q4_K", "f16", ...
  uint32_t block_elems;   // values per block
  uint32_t block_bytes;   // bytes per block
};

// nullopt for ids no ggml release defines (or ones it removed, such as 4 and 5).
std::optional<GgmlTypeInfo> FindGgmlType(uint32_t id);
// REQUIRES: `type` is a defined enumerator.
const GgmlTypeInfo& TypeInfo(GgmlType type);
std::string_view TypeName(GgmlType type);
// Case-insensitive lookup by name ("Q4_K", "q4_k", "bf16").
std::optional<GgmlType> GgmlTypeFromName(std::string_view name);

// Bytes of one row of `ne0` values; nullopt if ne0 is not a whole number of blocks
// or the size overflows.
std::optional<uint64_t> RowBytes(GgmlType type, uint64_t ne0);

}  // namespace strata::storage

// One GGUF metadata value: a scalar, a string, or an array of values (arrays may nest).
// Integer accessors accept any integer width whose value fits, because real files
// disagree on widths (u32 vs u64 context lengths, i32 vs u32 ratios: docs/GGUF.md §5).
// Value type; thread-compatible.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace strata::storage {

enum class GgufType : uint32_t {
  kU8 = 0,
  kI8 = 1,
  kU16 = 2,
  kI16 = 3,
  kU32 = 4,
  kI32 = 5,
  kF32 = 6,
  kBool = 7,
  kString = 8,
  kArray = 9,
  kU64 = 10,
  kI64 = 11,
  kF64 = 12,
};
inline constexpr uint32_t kGgufTypeCount = 13;

std::string_view GgufTypeName(GgufType type);
bool IsIntegerType(GgufType type);
bool IsSignedType(GgufType type);
// Bytes of one encoded scalar of `type`; 0 for strings and arrays (variable size).
uint32_t ScalarBytes(GgufType type);

class GgufValue {
 public:
  GgufValue() = default;

  // Integers of a given width. REQUIRES: `type` is an integer type and the value fits.
  static GgufValue Unsigned(GgufType type, uint64_t value);
  static GgufValue Signed(GgufType type, int64_t value);
  static GgufValue U32(uint32_t v) { return Unsigned(GgufType::kU32, v); }
  static GgufValue U64(uint64_t v) { return Unsigned(GgufType::kU64, v); }
  static GgufValue I32(int32_t v) { return Signed(GgufType::kI32, v); }
  static GgufValue F32(float value);
  static GgufValue F64(double value);
  static GgufValue Bool(bool value);
  static GgufValue String(std::string value);
  // REQUIRES: every item has type `elem_type`.
  static GgufValue Array(GgufType elem_type, std::vector<GgufValue> items);
  static GgufValue StringArray(const std::vector<std::string>& items);
  static GgufValue U32Array(const std::vector<uint32_t>& items);
  static GgufValue I32Array(const std::vector<int32_t>& items);
  static GgufValue F32Array(const std::vector<float>& items);

  GgufType type() const { return type_; }

  // Integer value of any width, if it is non-negative (AsUnsigned) or fits (AsSigned).
  std::optional<uint64_t> AsUnsigned() const;
  std::optional<int64_t> AsSigned() const;
  // f32 or f64.
  std::optional<double> AsFloat() const;
  std::optional<bool> AsBool() const;
  // nullptr unless a string.
  const std::string* AsString() const;

  // Arrays. REQUIRES: type() == kArray for elem_type().
  GgufType elem_type() const { return elem_type_; }
  const std::vector<GgufValue>& items() const { return items_; }

  // A short human rendering for `inspect`: scalars in full, strings and arrays cut.
  std::string ToDisplayString(size_t max_chars = 80) const;

  friend bool operator==(const GgufValue&, const GgufValue&) = default;

 private:
  GgufType type_ = GgufType::kU8;
  GgufType elem_type_ = GgufType::kU8;  // meaningful only for arrays
  uint64_t bits_ = 0;                   // integers (signed ones sign-extended) and bools
  double float_ = 0;                    // f32 and f64 (f32 -> double -> f32 is exact)
  std::string string_;
  std::vector<GgufValue> items_;
};

}  // namespace strata::storage

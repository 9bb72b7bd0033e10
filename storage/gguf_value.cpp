#include "storage/gguf_value.h"

#include <cassert>
#include <cstdio>

#include "util/utf8.h"

namespace strata::storage {

std::string_view GgufTypeName(GgufType type) {
  switch (type) {
    case GgufType::kU8:
      return "u8";
    case GgufType::kI8:
      return "i8";
    case GgufType::kU16:
      return "u16";
    case GgufType::kI16:
      return "i16";
    case GgufType::kU32:
      return "u32";
    case GgufType::kI32:
      return "i32";
    case GgufType::kF32:
      return "f32";
    case GgufType::kBool:
      return "bool";
    case GgufType::kString:
      return "str";
    case GgufType::kArray:
      return "arr";
    case GgufType::kU64:
      return "u64";
    case GgufType::kI64:
      return "i64";
    case GgufType::kF64:
      return "f64";
  }
  return "?";
}

bool IsIntegerType(GgufType type) {
  switch (type) {
    case GgufType::kU8:
    case GgufType::kI8:
    case GgufType::kU16:
    case GgufType::kI16:
    case GgufType::kU32:
    case GgufType::kI32:
    case GgufType::kU64:
    case GgufType::kI64:
      return true;
    default:
      return false;
  }
}

bool IsSignedType(GgufType type) {
  return type == GgufType::kI8 || type == GgufType::kI16 || type == GgufType::kI32 ||
         type == GgufType::kI64;
}

uint32_t ScalarBytes(GgufType type) {
  switch (type) {
    case GgufType::kU8:
    case GgufType::kI8:
    case GgufType::kBool:
      return 1;
    case GgufType::kU16:
    case GgufType::kI16:
      return 2;
    case GgufType::kU32:
    case GgufType::kI32:
    case GgufType::kF32:
      return 4;
    case GgufType::kU64:
    case GgufType::kI64:
    case GgufType::kF64:
      return 8;
    default:
      return 0;
  }
}

GgufValue GgufValue::Unsigned(GgufType type, uint64_t value) {
  assert(IsIntegerType(type) && !IsSignedType(type) && "Unsigned() needs an unsigned type");
  GgufValue v;
  v.type_ = type;
  v.bits_ = value;
  return v;
}

GgufValue GgufValue::Signed(GgufType type, int64_t value) {
  assert(IsSignedType(type) && "Signed() needs a signed type");
  GgufValue v;
  v.type_ = type;
  v.bits_ = static_cast<uint64_t>(value);
  return v;
}

GgufValue GgufValue::F32(float value) {
  GgufValue v;
  v.type_ = GgufType::kF32;
  v.float_ = value;
  return v;
}

GgufValue GgufValue::F64(double value) {
  GgufValue v;
  v.type_ = GgufType::kF64;
  v.float_ = value;
  return v;
}

GgufValue GgufValue::Bool(bool value) {
  GgufValue v;
  v.type_ = GgufType::kBool;
  v.bits_ = value ? 1 : 0;
  return v;
}

GgufValue GgufValue::String(std::string value) {
  GgufValue v;
  v.type_ = GgufType::kString;
  v.string_ = std::move(value);
  return v;
}

GgufValue GgufValue::Array(GgufType elem_type, std::vector<GgufValue> items) {
  GgufValue v;
  v.type_ = GgufType::kArray;
  v.elem_type_ = elem_type;
  v.items_ = std::move(items);
  return v;
}

GgufValue GgufValue::StringArray(const std::vector<std::string>& items) {
  std::vector<GgufValue> values;
  values.reserve(items.size());
  for (const auto& s : items) values.push_back(String(s));
  return Array(GgufType::kString, std::move(values));
}

GgufValue GgufValue::U32Array(const std::vector<uint32_t>& items) {
  std::vector<GgufValue> values;
  values.reserve(items.size());
  for (uint32_t x : items) values.push_back(U32(x));
  return Array(GgufType::kU32, std::move(values));
}

GgufValue GgufValue::I32Array(const std::vector<int32_t>& items) {
  std::vector<GgufValue> values;
  values.reserve(items.size());
  for (int32_t x : items) values.push_back(I32(x));
  return Array(GgufType::kI32, std::move(values));
}

GgufValue GgufValue::F32Array(const std::vector<float>& items) {
  std::vector<GgufValue> values;
  values.reserve(items.size());
  for (float x : items) values.push_back(F32(x));
  return Array(GgufType::kF32, std::move(values));
}

std::optional<uint64_t> GgufValue::AsUnsigned() const {
  if (!IsIntegerType(type_)) return std::nullopt;
  if (IsSignedType(type_) && static_cast<int64_t>(bits_) < 0) return std::nullopt;
  return bits_;
}

std::optional<int64_t> GgufValue::AsSigned() const {
  if (!IsIntegerType(type_)) return std::nullopt;
  if (!IsSignedType(type_) && bits_ > static_cast<uint64_t>(INT64_MAX)) return std::nullopt;
  return static_cast<int64_t>(bits_);
}

std::optional<double> GgufValue::AsFloat() const {
  if (type_ != GgufType::kF32 && type_ != GgufType::kF64) return std::nullopt;
  return float_;
}

std::optional<bool> GgufValue::AsBool() const {
  if (type_ != GgufType::kBool) return std::nullopt;
  return bits_ != 0;
}

const std::string* GgufValue::AsString() const {
  return type_ == GgufType::kString ? &string_ : nullptr;
}

std::string GgufValue::ToDisplayString(size_t max_chars) const {
  std::string out;
  switch (type_) {
    case GgufType::kBool:
      out = bits_ ? "true" : "false";
      break;
    case GgufType::kF32:
    case GgufType::kF64: {
      char buf[40];
      std::snprintf(buf, sizeof(buf), "%g", float_);
      out = buf;
      break;
    }
    case GgufType::kString:
      out = "\"" + PrintableForError(string_, max_chars) + "\"";
      break;
    case GgufType::kArray: {
      out =
          "[" + std::string(GgufTypeName(elem_type_)) + " x " + std::to_string(items_.size()) + "]";
      std::string preview;
      for (size_t i = 0; i < items_.size() && preview.size() < max_chars; ++i) {
        if (i) preview += ", ";
        preview += items_[i].ToDisplayString(24);
      }
      if (!items_.empty()) out += " " + preview + (preview.size() >= max_chars ? ", ..." : "");
      break;
    }
    default:
      out =
          IsSignedType(type_) ? std::to_string(static_cast<int64_t>(bits_)) : std::to_string(bits_);
  }
  return out;
}

}  // namespace strata::storage

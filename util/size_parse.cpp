#include "util/size_parse.h"

#include <cctype>
#include <cmath>
#include <cstdio>

#include "util/utf8.h"

namespace strata {

Result<uint64_t> ParseSize(std::string_view text) {
  // Echoed in a one-line error: control bytes and newlines are shown escaped.
  const std::string original = PrintableForError(text);
  auto bad = [&] {
    return Status::InvalidArgument("'" + original +
                                   "' is not a size (expected e.g. 512, 64K, 1.5G, 48GiB)");
  };
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) {
    text.remove_suffix(1);
  }
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.front()))) {
    text.remove_prefix(1);
  }
  size_t digits_end = 0;
  bool seen_dot = false, seen_digit = false;
  while (digits_end < text.size()) {
    char c = text[digits_end];
    if (std::isdigit(static_cast<unsigned char>(c))) {
      seen_digit = true;
    } else if (c == '.' && !seen_dot) {
      seen_dot = true;
    } else {
      break;
    }
    ++digits_end;
  }
  if (!seen_digit || digits_end > 30) return bad();
  std::string number(text.substr(0, digits_end));
  std::string suffix;
  for (char c : text.substr(digits_end)) {
    suffix += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  if (suffix.size() > 1 && (suffix.ends_with("ib") || suffix.ends_with("b"))) {
    suffix.resize(suffix.ends_with("ib") ? suffix.size() - 2 : suffix.size() - 1);
  } else if (suffix == "b") {
    suffix.clear();
  }
  int shift = 0;
  if (suffix.empty()) {
    shift = 0;
  } else if (suffix == "k") {
    shift = 10;
  } else if (suffix == "m") {
    shift = 20;
  } else if (suffix == "g") {
    shift = 30;
  } else if (suffix == "t") {
    shift = 40;
  } else {
    return bad();
  }
  const long double value = std::strtold(number.c_str(), nullptr) * std::ldexp(1.0L, shift);
  if (!(value >= 0) || value >= 18446744073709551615.0L) return bad();
  if (!seen_dot) {
    // Integers stay exact (no float round trip) as long as the shift does not overflow.
    uint64_t base = std::strtoull(number.c_str(), nullptr, 10);
    if (shift > 0 && base > (UINT64_MAX >> shift)) return bad();
    return base << shift;
  }
  return static_cast<uint64_t>(std::llround(value));
}

std::string FormatBytes(uint64_t bytes) {
  static const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
  double v = static_cast<double>(bytes);
  int unit = 0;
  while (v >= 1024.0 && unit < 5) {
    v /= 1024.0;
    ++unit;
  }
  char buf[32];
  if (unit == 0) {
    std::snprintf(buf, sizeof(buf), "%llu B", static_cast<unsigned long long>(bytes));
  } else {
    std::snprintf(buf, sizeof(buf), v < 10 ? "%.2f %s" : (v < 100 ? "%.1f %s" : "%.0f %s"), v,
                  kUnits[unit]);
  }
  return buf;
}

}  // namespace strata

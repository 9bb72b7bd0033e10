#include "engine/engram_config.h"

#include <algorithm>
#include <cctype>
#include <limits>
#include <set>
#include <unordered_map>

namespace strata::engine {
namespace {

using storage::GgufType;
using storage::GgufValue;

Result<std::vector<uint64_t>> ReadUintArray(const storage::GgufFile& f, const std::string& key) {
  const GgufValue* v = f.Find(key);
  if (!v) return Status::Corruption(f.path() + ": metadata key '" + key + "' is missing");
  if (v->type() != GgufType::kArray || !storage::IsIntegerType(v->elem_type())) {
    return Status::Corruption(f.path() + ": metadata key '" + key +
                              "' is not an array of integers");
  }
  std::vector<uint64_t> out;
  out.reserve(v->items().size());
  for (const GgufValue& item : v->items()) {
    const auto u = item.AsUnsigned();
    if (!u) return Status::Corruption(f.path() + ": metadata key '" + key + "' has a negative item");
    out.push_back(*u);
  }
  return out;
}

Result<uint32_t> ReadU32Or(const storage::GgufFile& f, const std::string& key, uint32_t fallback) {
  if (!f.Find(key)) return fallback;
  STRATA_ASSIGN_OR_RETURN(uint64_t v, f.GetUnsigned(key));
  if (v > UINT32_MAX) {
    return Status::Corruption(f.path() + ": metadata key '" + key + "' = " + std::to_string(v) +
                              " is out of range");
  }
  return static_cast<uint32_t>(v);
}

bool IsPrime(uint64_t n) {
  if (n < 2) return false;
  if (n % 2 == 0) return n == 2;
  for (uint64_t d = 3; d * d <= n; d += 2) {
    if (n % d == 0) return false;
  }
  return true;
}

GgufValue U64Array(const std::vector<uint64_t>& v) {
  std::vector<GgufValue> items;
  items.reserve(v.size());
  for (uint64_t x : v) items.push_back(GgufValue::U64(x));
  return GgufValue::Array(GgufType::kU64, std::move(items));
}

GgufValue U32ArrayOf(const std::vector<uint64_t>& v) {
  std::vector<uint32_t> narrow(v.begin(), v.end());
  return GgufValue::U32Array(narrow);
}

}  // namespace

std::string_view EngramEncodingName(EngramEncoding e) {
  switch (e) {
    case EngramEncoding::kE4m3Row264:
      return "e4m3_e8m0_32_row264";
    case EngramEncoding::kQ4KRow144:
      return "q4_k_row144";
    case EngramEncoding::kF16:
      return "f16";
    case EngramEncoding::kBF16:
      return "bf16";
    case EngramEncoding::kQ8_0:
      return "q8_0";
    case EngramEncoding::kF32:
      return "f32";
  }
  return "?";
}

Result<EngramEncoding> ParseEngramEncoding(std::string_view name) {
  for (EngramEncoding e : {EngramEncoding::kE4m3Row264, EngramEncoding::kQ4KRow144,
                           EngramEncoding::kF16, EngramEncoding::kBF16, EngramEncoding::kQ8_0,
                           EngramEncoding::kF32}) {
    if (name == EngramEncodingName(e)) return e;
  }
  return Status::Unsupported("Engram row encoding '" + std::string(name) +
                             "' is not supported (e4m3_e8m0_32_row264, q4_k_row144, f16, bf16, "
                             "q8_0, f32)");
}

std::string_view EngramModuleName(EngramModule m) {
  return m == EngramModule::kV41 ? "v41" : "demo";
}

uint64_t EngramConfig::row_bytes() const {
  switch (encoding) {
    case EngramEncoding::kE4m3Row264:
      return 264;
    case EngramEncoding::kQ4KRow144:
      return 144;
    case EngramEncoding::kF16:
    case EngramEncoding::kBF16:
      return uint64_t{head_dim} * 2;
    case EngramEncoding::kQ8_0:
      return uint64_t{head_dim} / 32 * 34;
    case EngramEncoding::kF32:
      return uint64_t{head_dim} * 4;
  }
  return 0;
}

storage::GgmlType EngramConfig::table_type() const {
  switch (encoding) {
    case EngramEncoding::kE4m3Row264:
      return storage::GgmlType::kI8;
    case EngramEncoding::kQ4KRow144:
      return storage::GgmlType::kQ4_K;
    case EngramEncoding::kF16:
      return storage::GgmlType::kF16;
    case EngramEncoding::kBF16:
      return storage::GgmlType::kBF16;
    case EngramEncoding::kQ8_0:
      return storage::GgmlType::kQ8_0;
    case EngramEncoding::kF32:
      return storage::GgmlType::kF32;
  }
  return storage::GgmlType::kI8;
}

uint64_t EngramConfig::table_ne0() const {
  return encoding == EngramEncoding::kE4m3Row264 ? row_bytes() : head_dim;
}

int EngramConfig::index_of_layer(uint32_t layer) const {
  for (size_t i = 0; i < layer_ids.size(); ++i) {
    if (layer_ids[i] == layer) return static_cast<int>(i);
  }
  return -1;
}

Status EngramConfig::Validate(uint32_t n_vocab, uint32_t n_layer) const {
  auto bad = [](const std::string& what) { return Status::InvalidArgument("engram: " + what); };
  if (layer_ids.empty()) return bad("layer_ids is empty");
  for (size_t i = 0; i < layer_ids.size(); ++i) {
    if (layer_ids[i] >= n_layer) {
      return bad("layer " + std::to_string(layer_ids[i]) + " is beyond the model's " +
                 std::to_string(n_layer) + " layers");
    }
    if (i > 0 && layer_ids[i] <= layer_ids[i - 1]) return bad("layer_ids are not ascending");
  }
  if (max_ngram < 2 || max_ngram > 8) return bad("max_ngram_size must be in 2..8");
  if (n_heads == 0 || n_heads > 64) return bad("head count must be in 1..64");
  if (head_dim == 0 || head_dim % 32 != 0) return bad("head_dim must be a multiple of 32");
  if ((encoding == EngramEncoding::kE4m3Row264 || encoding == EngramEncoding::kQ4KRow144) &&
      head_dim != 256) {
    return bad(std::string(EngramEncodingName(encoding)) + " rows hold 256 values, not " +
               std::to_string(head_dim));
  }
  if (module == EngramModule::kDemo && (conv_kernel == 0 || conv_kernel > 16 ||
                                        conv_dilation == 0 || conv_dilation > 16)) {
    return bad("conv kernel and dilation must be in 1..16");
  }
  const size_t L = layer_ids.size();
  if (rows.size() != L) return bad("rows has " + std::to_string(rows.size()) + " entries, not " +
                                   std::to_string(L));
  if (primes.size() != L * cols()) {
    return bad("primes has " + std::to_string(primes.size()) + " entries, not " +
               std::to_string(L * cols()) + " (layers x orders x heads)");
  }
  if (multipliers.size() != L * max_ngram) {
    return bad("multipliers has " + std::to_string(multipliers.size()) + " entries, not " +
               std::to_string(L * max_ngram));
  }
  if (compressed_vocab == 0) return bad("compressed_vocab_size is 0");
  if (token_map.size() != n_vocab) {
    return bad("token_map has " + std::to_string(token_map.size()) + " entries but the vocabulary " +
               std::to_string(n_vocab));
  }
  for (size_t t = 0; t < token_map.size(); ++t) {
    if (token_map[t] >= compressed_vocab) {
      return bad("token_map[" + std::to_string(t) + "] = " + std::to_string(token_map[t]) +
                 " is not below compressed_vocab_size " + std::to_string(compressed_vocab));
    }
  }
  if (pad_id >= compressed_vocab) return bad("pad_id is not below compressed_vocab_size");
  const uint64_t max_mult = static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) /
                            compressed_vocab;
  for (size_t i = 0; i < multipliers.size(); ++i) {
    if (multipliers[i] % 2 == 0 || multipliers[i] > max_mult) {
      return bad("multiplier " + std::to_string(i) + " = " + std::to_string(multipliers[i]) +
                 " is not odd and <= INT64_MAX / compressed_vocab_size");
    }
  }
  for (size_t l = 0; l < L; ++l) {
    uint64_t sum = 0;
    for (uint32_t c = 0; c < cols(); ++c) {
      const uint64_t p = primes[l * cols() + c];
      if (p < 2 || p > UINT32_MAX) return bad("prime " + std::to_string(p) + " is out of range");
      sum += p;
    }
    if (sum != rows[l]) {
      return bad("layer " + std::to_string(layer_ids[l]) + ": its primes sum to " +
                 std::to_string(sum) + " but rows says " + std::to_string(rows[l]));
    }
  }
  return Status::Ok();
}

Result<EngramConfig> EngramConfig::FromGguf(const storage::GgufFile& f, const std::string& prefix,
                                            uint32_t n_vocab, uint32_t n_layer) {
  EngramConfig c;
  const std::string p = prefix + ".engram.";
  if (!f.Find(p + "layer_ids")) return c;
  STRATA_ASSIGN_OR_RETURN(std::vector<uint64_t> layers, ReadUintArray(f, p + "layer_ids"));
  for (uint64_t l : layers) {
    if (l > UINT32_MAX) return Status::Corruption(f.path() + ": engram layer id out of range");
    c.layer_ids.push_back(static_cast<uint32_t>(l));
  }
  STRATA_ASSIGN_OR_RETURN(c.rows, ReadUintArray(f, p + "rows"));
  STRATA_ASSIGN_OR_RETURN(c.primes, ReadUintArray(f, p + "primes"));
  STRATA_ASSIGN_OR_RETURN(c.multipliers, ReadUintArray(f, p + "multipliers"));
  STRATA_ASSIGN_OR_RETURN(std::vector<uint64_t> map, ReadUintArray(f, p + "token_map"));
  c.token_map.reserve(map.size());
  for (uint64_t v : map) c.token_map.push_back(static_cast<uint32_t>(std::min<uint64_t>(v, UINT32_MAX)));
  STRATA_ASSIGN_OR_RETURN(uint64_t cv, f.GetUnsigned(p + "compressed_vocab_size"));
  c.compressed_vocab = static_cast<uint32_t>(std::min<uint64_t>(cv, UINT32_MAX));
  STRATA_ASSIGN_OR_RETURN(uint64_t pad, f.GetUnsigned(p + "pad_id"));
  c.pad_id = static_cast<uint32_t>(std::min<uint64_t>(pad, UINT32_MAX));
  // ds4 hard-codes NGRAM 4, HEADS 8, DIM 256; strata's files state them.
  STRATA_ASSIGN_OR_RETURN(c.max_ngram, ReadU32Or(f, p + "max_ngram_size", 4));
  STRATA_ASSIGN_OR_RETURN(c.n_heads, ReadU32Or(f, p + "head_count", 8));
  STRATA_ASSIGN_OR_RETURN(c.head_dim, ReadU32Or(f, p + "head_dim", 256));
  const auto encoding = ParseEngramEncoding(f.GetStringOr(p + "encoding", "e4m3_e8m0_32_row264"));
  if (!encoding.ok()) return Status::Unsupported(f.path() + ": " + encoding.status().message());
  c.encoding = *encoding;
  const std::string module = f.GetStringOr(p + "module", "v41");
  if (module == "v41") {
    c.module = EngramModule::kV41;
  } else if (module == "demo") {
    c.module = EngramModule::kDemo;
  } else {
    return Status::Unsupported(f.path() + ": metadata key '" + p + "module' = '" + module +
                               "' is not v41 or demo");
  }
  STRATA_ASSIGN_OR_RETURN(c.conv_kernel, ReadU32Or(f, p + "conv_kernel", 4));
  STRATA_ASSIGN_OR_RETURN(c.conv_dilation, ReadU32Or(f, p + "conv_dilation", c.max_ngram - 1));
  if (Status s = c.Validate(n_vocab, n_layer); !s.ok()) {
    return Status::Corruption(f.path() + ": " + s.message());
  }
  return c;
}

void EngramConfig::WriteMetadata(storage::GgufWriter& w, const std::string& prefix) const {
  const std::string p = prefix + ".engram.";
  w.AddMetadata(p + "encoding", GgufValue::String(std::string(EngramEncodingName(encoding))));
  w.AddMetadata(p + "layer_ids", GgufValue::U32Array(layer_ids));
  w.AddMetadata(p + "rows", U32ArrayOf(rows));
  w.AddMetadata(p + "compressed_vocab_size", GgufValue::U32(compressed_vocab));
  w.AddMetadata(p + "pad_id", GgufValue::U32(pad_id));
  w.AddMetadata(p + "token_map", GgufValue::U32Array(token_map));
  w.AddMetadata(p + "primes", U32ArrayOf(primes));
  w.AddMetadata(p + "multipliers", U64Array(multipliers));
  w.AddMetadata(p + "max_ngram_size", GgufValue::U32(max_ngram));
  w.AddMetadata(p + "head_count", GgufValue::U32(n_heads));
  w.AddMetadata(p + "head_dim", GgufValue::U32(head_dim));
  w.AddMetadata(p + "module", GgufValue::String(std::string(EngramModuleName(module))));
  if (module == EngramModule::kDemo) {
    w.AddMetadata(p + "conv_kernel", GgufValue::U32(conv_kernel));
    w.AddMetadata(p + "conv_dilation", GgufValue::U32(conv_dilation));
  }
}

std::vector<uint64_t> EngramPrimes(uint64_t vocab_base, uint32_t n_layers, uint32_t max_ngram,
                                   uint32_t n_heads) {
  std::set<uint64_t> used;
  std::vector<uint64_t> out;
  for (uint32_t l = 0; l < n_layers; ++l) {
    for (uint32_t n = 2; n <= max_ngram; ++n) {
      uint64_t start = vocab_base - 1;
      for (uint32_t h = 0; h < n_heads; ++h) {
        uint64_t p = start + 1;
        while (!IsPrime(p) || used.count(p)) ++p;
        used.insert(p);
        out.push_back(p);
        start = p;
      }
    }
  }
  return out;
}

std::vector<uint64_t> SyntheticEngramMultipliers(uint64_t seed,
                                                 const std::vector<uint32_t>& layer_ids,
                                                 uint32_t max_ngram, uint32_t compressed_vocab) {
  const uint64_t half_bound = std::max<uint64_t>(
      1, static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) / compressed_vocab / 2);
  std::vector<uint64_t> out;
  for (uint32_t layer : layer_ids) {
    uint64_t x = seed + 10007ull * layer;
    for (uint32_t j = 0; j < max_ngram; ++j) {
      // splitmix64
      x += 0x9e3779b97f4a7c15ull;
      uint64_t z = x;
      z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
      z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
      z ^= z >> 31;
      out.push_back(2 * (z % half_bound) + 1);
    }
  }
  return out;
}

std::vector<uint32_t> SyntheticTokenMap(const std::vector<std::string>& tokens,
                                        uint32_t* compressed_vocab) {
  std::unordered_map<std::string, uint32_t> ids;
  std::vector<uint32_t> map;
  map.reserve(tokens.size());
  for (const std::string& token : tokens) {
    std::string key = token;
    if (key.starts_with("\xC4\xA0") && key.size() > 2) key.erase(0, 2);  // "Ġ"
    for (char& ch : key) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    auto [it, inserted] = ids.emplace(key, static_cast<uint32_t>(ids.size()));
    map.push_back(it->second);
  }
  *compressed_vocab = static_cast<uint32_t>(ids.size());
  return map;
}

}  // namespace strata::engine

// Engram addressing and row decoding against independent sources: the hash against
// tests/engine/engram_reference.py (Python written from docs/GGUF.md §4.4's text), V4.1's
// published table sizes against the primes both implementations derive, a ds4-style
// `deepseek41.engram.*` header loading and validating, and the row encodings against
// hand-computed values.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "engine/engram_config.h"
#include "prefetch/engram_hash.h"
#include "engine/engram_rows.h"
#include "engine/quant/quantize.h"
#include "storage/gguf.h"
#include "storage/gguf_writer.h"
#include "tests/skip_or_fail.h"

namespace strata::engine {
namespace {

namespace fs = std::filesystem;

// Debian's interpreter (with python3-numpy); a pyenv shim earlier on PATH may lack it.
std::string Python() { return fs::exists("/usr/bin/python3") ? "/usr/bin/python3" : "python3"; }

std::string Script() { return std::string(STRATA_SOURCE_DIR) + "/tests/engine/engram_reference.py"; }

// True when `python3 -c CODE` runs: the interpreter (and what CODE imports) is there.
bool PythonHas(const std::string& code) {
  return std::system((Python() + " -c '" + code + "' >/dev/null 2>&1").c_str()) == 0;
}

// Runs the reference script. A failure of the script itself fails the test; only a
// missing interpreter or numpy lets the caller skip (checked before with PythonHas).
std::string RunScript(const std::string& args) {
  const std::string cmd = Python() + " " + Script() + " " + args;
  FILE* p = ::popen(cmd.c_str(), "r");
  if (!p) return "";
  std::string out;
  char buf[65536];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  EXPECT_EQ(::pclose(p), 0) << cmd;
  return out;
}

EngramConfig SmallConfig() {
  EngramConfig c;
  c.layer_ids = {1, 3};
  c.max_ngram = 4;
  c.n_heads = 3;
  c.head_dim = 256;
  std::vector<std::string> tokens;
  for (int i = 0; i < 300; ++i) tokens.push_back(i % 2 ? "Tok" + std::to_string(i / 4) : "tok" + std::to_string(i / 4));
  c.token_map = SyntheticTokenMap(tokens, &c.compressed_vocab);
  c.pad_id = c.token_map[2];
  c.primes = EngramPrimes(101, 2, c.max_ngram, c.n_heads);
  c.rows.assign(2, 0);
  for (uint32_t l = 0; l < 2; ++l) {
    for (uint32_t col = 0; col < c.cols(); ++col) c.rows[l] += c.prime(l, col);
  }
  c.multipliers = SyntheticEngramMultipliers(7, c.layer_ids, c.max_ngram, c.compressed_vocab);
  return c;
}

TEST(EngramHash, MatchesIndependentPythonImplementation) {
  const EngramConfig c = SmallConfig();
  ASSERT_TRUE(c.Validate(300, 4).ok());
  // Sequences: plain, with dead (masked) positions, and long enough to wrap history.
  std::vector<std::vector<int32_t>> seqs;
  std::vector<std::vector<int>> masks;
  for (int s = 0; s < 4; ++s) {
    std::vector<int32_t> t;
    std::vector<int> m;
    for (int i = 0; i < 40; ++i) {
      t.push_back((s * 131 + i * 17 + (i % 5) * 3) % 300);
      m.push_back(s >= 2 && (i % 7 == 3 || i == 11) ? 0 : 1);
    }
    seqs.push_back(t);
    masks.push_back(m);
  }
  nlohmann::json in;
  in["token_map"] = c.token_map;
  in["pad_id"] = c.pad_id;
  in["primes"] = c.primes;
  in["multipliers"] = c.multipliers;
  in["layers"] = c.n_layers();
  in["max_ngram"] = c.max_ngram;
  in["heads"] = c.n_heads;
  for (size_t s = 0; s < seqs.size(); ++s) {
    nlohmann::json seq;
    seq["tokens"] = seqs[s];
    if (s >= 2) {
      seq["mask"] = masks[s];
    } else {
      seq["mask"] = nullptr;
    }
    in["sequences"].push_back(seq);
  }
  const fs::path input = fs::temp_directory_path() / ("strata-engram-" + std::to_string(::getpid()) + ".json");
  std::ofstream(input) << in.dump();
  if (!PythonHas("import json")) {
    fs::remove(input);
    STRATA_SKIP_OR_FAIL("python3 not available: the hash is not checked against Python");
  }
  const std::string out = RunScript("hash " + input.string());
  fs::remove(input);
  ASSERT_FALSE(out.empty());
  const auto expected = nlohmann::json::parse(out)["rows"];
  ASSERT_EQ(expected.size(), seqs.size());
  for (size_t s = 0; s < seqs.size(); ++s) {
    prefetch::EngramHasher hasher(c);
    std::vector<uint64_t> rows(hasher.rows_per_token());
    std::vector<uint64_t> all;
    for (size_t i = 0; i < seqs[s].size(); ++i) {
      hasher.Next(seqs[s][i], masks[s][i] != 0 || s < 2, rows);
      all.insert(all.end(), rows.begin(), rows.end());
    }
    ASSERT_EQ(all, expected[s].get<std::vector<uint64_t>>()) << "sequence " << s;
    for (size_t i = 0; i < all.size(); ++i) {
      ASSERT_LT(all[i], c.rows[(i / c.cols()) % 2]);  // every id inside its layer's table
    }
  }
}

TEST(EngramHash, SequenceStartAndDeadSlotsArePad) {
  EngramConfig c = SmallConfig();
  prefetch::EngramHasher a(c), b(c);
  std::vector<uint64_t> ra(a.rows_per_token()), rb(b.rows_per_token());
  // At the start every older slot is pad; a dead position reads as pad for later tokens.
  a.Next(5, true, ra);
  b.Next(9, false, rb);
  b.Next(5, true, rb);
  EXPECT_EQ(ra, rb);
  // A snapshot (copy) continues exactly like the original.
  prefetch::EngramHasher snap = a;
  a.Next(7, true, ra);
  snap.Next(7, true, rb);
  EXPECT_EQ(ra, rb);
}

TEST(EngramConstants, V41PublishedTableSizesAndDs4Header) {
  if (!PythonHas("import numpy")) {
    STRATA_SKIP_OR_FAIL("python3 with numpy not available (apt install python3-numpy)");
  }
  const std::string out = RunScript("v41-constants");
  ASSERT_FALSE(out.empty());
  const auto v = nlohmann::json::parse(out);
  // The published row counts (docs/GGUF.md §4.1) are the sums of the derived primes.
  EXPECT_EQ(v["rows"].get<std::vector<uint64_t>>(), (std::vector<uint64_t>{384006168, 384016682}));
  const auto primes = v["primes"].get<std::vector<uint64_t>>();
  EXPECT_EQ(EngramPrimes(16000000, 2, 4, 8), primes);  // strata's own derivation agrees

  // A header with ds4's keys and V4.1's constants loads and validates.
  storage::GgufWriter w;
  using storage::GgufValue;
  w.AddMetadata("general.architecture", GgufValue::String("deepseek41"));
  std::vector<uint32_t> map(129280);
  for (uint32_t i = 0; i < map.size(); ++i) map[i] = i % 99092;
  std::vector<GgufValue> mult;
  for (uint64_t m : v["multipliers"].get<std::vector<uint64_t>>()) mult.push_back(GgufValue::U64(m));
  std::vector<uint32_t> p32(primes.begin(), primes.end());
  w.AddMetadata("deepseek41.engram.encoding", GgufValue::String("e4m3_e8m0_32_row264"));
  w.AddMetadata("deepseek41.engram.layer_ids", GgufValue::U32Array({1, 14}));
  w.AddMetadata("deepseek41.engram.rows", GgufValue::U32Array({384006168, 384016682}));
  w.AddMetadata("deepseek41.engram.compressed_vocab_size", GgufValue::U32(99092));
  w.AddMetadata("deepseek41.engram.pad_id", GgufValue::U32(2));
  w.AddMetadata("deepseek41.engram.token_map", GgufValue::U32Array(map));
  w.AddMetadata("deepseek41.engram.primes", GgufValue::U32Array(p32));
  w.AddMetadata("deepseek41.engram.multipliers", GgufValue::Array(storage::GgufType::kU64, mult));
  const std::string path = (fs::temp_directory_path() / ("strata-ds41-" + std::to_string(::getpid()) + ".gguf")).string();
  ASSERT_TRUE(w.WriteTo(path).ok());
  auto file = storage::ReadGgufFile(path);
  ASSERT_TRUE(file.ok()) << file.status().ToString();
  auto c = EngramConfig::FromGguf(*file, "deepseek41", 129280, 40);
  fs::remove(path);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->cols(), 24u);
  EXPECT_EQ(c->embd(), 6144u);
  EXPECT_EQ(c->row_bytes(), 264u);
  EXPECT_EQ(c->rows[1], 384016682u);

  // The checks ds4 makes, each one line naming what is wrong.
  EngramConfig bad = *c;
  bad.multipliers[3] += 1;  // even
  EXPECT_NE(bad.Validate(129280, 40).message().find("multiplier 3"), std::string::npos);
  bad = *c;
  bad.rows[0] += 1;
  EXPECT_NE(bad.Validate(129280, 40).message().find("sum to"), std::string::npos);
  bad = *c;
  bad.token_map[77] = 99092;
  EXPECT_NE(bad.Validate(129280, 40).message().find("token_map[77]"), std::string::npos);
  bad = *c;
  EXPECT_NE(bad.Validate(129280, 10).message().find("beyond"), std::string::npos);
}

TEST(EngramRows, E4m3E8m0Decoding) {
  uint8_t row[264] = {};
  // 0x38: exponent 7, mantissa 0 -> 8 * 2^-3 = 1; 0xB9: -(9 * 2^-3); 0x01: 2^-9 (subnormal);
  // 0x7E: the largest finite code, 14 * 2^5 = 448.
  row[0] = 0x38, row[1] = 0xB9, row[2] = 0x01, row[3] = 0x7E;
  row[32] = 0x38;
  for (int g = 0; g < 8; ++g) row[256 + g] = 127;
  row[257] = 130;  // the second group is scaled by 2^3
  float out[256];
  ASSERT_TRUE(DecodeEngramRow(EngramEncoding::kE4m3Row264, row, 256, out));
  EXPECT_EQ(out[0], 1.0f);
  EXPECT_EQ(out[1], -1.125f);
  EXPECT_EQ(out[2], std::ldexp(1.0f, -9));
  EXPECT_EQ(out[3], 448.0f);
  EXPECT_EQ(out[32], 8.0f);
  EXPECT_EQ(out[4], 0.0f);
  // BF16 rounding: 1.125 * 2^-127 * ... stays exact; a value needing more than 8 mantissa
  // bits cannot occur from one E4M3 code times a power of two, so check the rounding on
  // a subnormal result instead: 2^-9 * 2^(0 - 127) is below BF16's normal range.
  row[256] = 0;
  ASSERT_TRUE(DecodeEngramRow(EngramEncoding::kE4m3Row264, row, 256, out));
  EXPECT_EQ(out[0], std::ldexp(1.0f, -127));
  // NaN codes and a scale of 255 are refused.
  row[256] = 127;
  row[5] = 0x7F;
  EXPECT_FALSE(DecodeEngramRow(EngramEncoding::kE4m3Row264, row, 256, out));
  row[5] = 0xFF;
  EXPECT_FALSE(DecodeEngramRow(EngramEncoding::kE4m3Row264, row, 256, out));
  row[5] = 0;
  row[263] = 255;
  EXPECT_FALSE(DecodeEngramRow(EngramEncoding::kE4m3Row264, row, 256, out));
  // EncodeE4m3 inverts the table on representable values.
  for (float f : {1.0f, -1.125f, 448.0f, 0.0f}) {
    uint8_t c[264] = {};
    c[0] = EncodeE4m3(f);
    for (int g = 0; g < 8; ++g) c[256 + g] = 127;
    ASSERT_TRUE(DecodeEngramRow(EngramEncoding::kE4m3Row264, c, 256, out));
    EXPECT_EQ(out[0], f);
  }
}

TEST(EngramRows, Q4KRow144IsOneQ4KBlock) {
  std::vector<float> values(256);
  for (int i = 0; i < 256; ++i) values[i] = std::sin(0.37f * static_cast<float>(i)) * 2.0f;
  uint8_t block[144];
  QuantizeRow(storage::GgmlType::kQ4_K, values.data(), 256, block);
  float a[256], b[256];
  ASSERT_TRUE(DecodeEngramRow(EngramEncoding::kQ4KRow144, block, 256, a));
  DequantizeRow(storage::GgmlType::kQ4_K, block, 256, b);
  for (int i = 0; i < 256; ++i) ASSERT_EQ(a[i], b[i]);
  EngramConfig c;
  c.encoding = EngramEncoding::kQ4KRow144;
  EXPECT_EQ(c.row_bytes(), 144u);
}

}  // namespace
}  // namespace strata::engine

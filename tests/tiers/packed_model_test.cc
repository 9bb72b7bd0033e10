// strata pack, end to end: a packed model gives bit-identical logits to the original for
// every codec, all in RAM and tiered, on every --io backend (the fault backend's flipped
// bytes are caught by the bundle checksums and re-read); a flipped byte on disk is an
// error naming the layer, expert and offset; truncated files, corrupt indexes and
// unknown codecs or versions are refused with one line; and an interrupted pack leaves
// neither OUT nor OUT.tmp, with IN untouched.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "engine/model_file.h"
#include "storage/pack_writer.h"
#include "tests/tiers/generate.h"
#include "tests/tiers/test_model.h"
#include "util/cancel.h"

namespace strata::engine {
namespace {

using namespace testing_generate;
using prefetch::PrefetchMode;

std::string Packed(const std::string& in, const std::string& codec) {
  std::string name = codec;
  std::replace(name.begin(), name.end(), ':', '-');
  std::replace(name.begin(), name.end(), '+', '-');
  const std::string out = in.substr(0, in.size() - 5) + ".packed-" + name + ".gguf";
  if (std::filesystem::exists(out)) return out;
  storage::PackOptions o;
  o.codec = *storage::ParseCodecChoice(codec);
  o.threads = 2;
  auto r = storage::PackModel(in, out, o, nullptr);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return out;
}

std::string ReadAll(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), {}};
}

void WriteAll(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
}

// Overwrites the bytes right after the value header of metadata `key` (for an array:
// after its element type and count) at `skip` bytes into the value.
std::string PatchValue(std::string file, const std::string& key, bool array, size_t skip,
                       const std::string& bytes) {
  std::string needle(8, '\0');
  const uint64_t len = key.size();
  std::memcpy(needle.data(), &len, 8);
  needle += key;
  const size_t at = file.find(needle);
  EXPECT_NE(at, std::string::npos) << key;
  const size_t value = at + needle.size() + 4 + (array ? 12 : 0) + skip;
  file.replace(value, bytes.size(), bytes);
  return file;
}

class PackedModel : public ::testing::TestWithParam<std::string> {};

TEST_P(PackedModel, LogitsMatchTheOriginalAllInRamAndTieredOnEveryBackend) {
  const std::string codec = GetParam();
  // Random weights leave lz4 nothing to find except in the byte-grouped exponent bytes
  // of F32; zstd's entropy coder shrinks Q8_0 a little; grouping is tested on F16 too.
  std::optional<storage::GgmlType> type;
  if (codec.starts_with("lz4")) type = storage::GgmlType::kF32;
  if (codec.starts_with("zstd") && codec.ends_with("+group")) type = storage::GgmlType::kF16;
  const std::string in = testing::TierTestModel("tiny", 64, type);
  const std::string packed = Packed(in, codec);
  auto header = storage::ReadGgufFile(packed);
  ASSERT_TRUE(header.ok()) << header.status().ToString();
  ASSERT_NE(header->pack(), nullptr);
  uint64_t compressed = 0;
  for (const auto& L : header->pack()->layers) {
    for (const auto& e : L.entries) compressed += e.codec != 0;
  }
  if (codec != "none") {
    EXPECT_GT(compressed, 0u) << "no bundle was stored compressed";
  }

  const Trace want = Generate(in, {});
  ExpectIdentical(want, Generate(packed, {}), "all in RAM");
  for (const Variant& v : {Variant{0.10, "uring", PrefetchMode::kAll, 2},
                           Variant{0.25, "pread", PrefetchMode::kRouter, 1},
                           Variant{0.10, "fault", PrefetchMode::kAll, 2}}) {
    tiers::CacheStats stats;
    ExpectIdentical(want, Generate(packed, v, &stats), v.Name());
    EXPECT_GT(stats.misses, 0u);
    if (v.io == "fault") {
      EXPECT_GT(stats.checksum_failures, 0u) << "flips should be caught";
    }
  }

  // Without the expert cache (a full load, as the reference path does).
  auto file = ModelFile::Open(packed);
  ASSERT_TRUE(file.ok()) << file.status().ToString();
  auto plain = ModelFile::Open(in);
  ASSERT_TRUE(plain.ok());
  for (const char* name : {"blk.1.ffn_gate_exps.weight", "blk.2.ffn_down_exps.weight"}) {
    const auto* t = (*plain)->gguf().FindTensor(name);
    ASSERT_NE(t, nullptr);
    EXPECT_EQ(0, std::memcmp((*plain)->Data(name), (*file)->Data(name), t->bytes)) << name;
  }
}

INSTANTIATE_TEST_SUITE_P(Codecs, PackedModel,
                         ::testing::Values("none", "lz4+group", "zstd:3", "zstd:3+group"),
                         [](const auto& p) {
                           std::string n = p.param;
                           std::erase_if(n, [](char c) { return !std::isalnum(c); });
                           return n;
                         });

TEST(PackedModelErrors, AFlippedByteOnDiskIsAnErrorNamingLayerExpertAndOffset) {
  const std::string packed =
      Packed(testing::TierTestModel("tiny", 64, storage::GgmlType::kF32), "lz4+group");
  auto header = storage::ReadGgufFile(packed);
  ASSERT_TRUE(header.ok());
  const storage::PackedLayer& L = header->pack()->layers.back();
  const storage::PackEntry& e = L.entries[7];
  std::string bytes = ReadAll(packed);
  bytes[e.offset + e.stored / 2] ^= 0x20;
  const std::string bad = packed + ".flipped.gguf";
  WriteAll(bad, bytes);

  for (double share : {0.0, 0.10}) {
    auto tm = TieredModel::Open(bad, OptionsFor(bad, {share, "uring"}));
    Status s = tm.status();
    if (tm.ok()) {
      // Tiered: the bundle is read when routed to; force the demand directly.
      tiers::ExpertCache& cache = (*tm)->cache();
      const int32_t expert = 7;
      cache.Demand(L.layer, {&expert, 1});
      s = cache.Next().status();
    }
    ASSERT_FALSE(s.ok()) << "share " << share;
    EXPECT_EQ(s.code(), StatusCode::kCorruption) << s.ToString();
    const std::string m = s.message();
    EXPECT_NE(m.find("layer " + std::to_string(L.layer) + " expert 7"), std::string::npos) << m;
    EXPECT_NE(m.find(std::to_string(e.offset)), std::string::npos) << m;
    EXPECT_NE(m.find("checksum mismatch"), std::string::npos) << m;
  }
  // The full load (no cache) says the same.
  auto file = ModelFile::Open(bad);
  ASSERT_FALSE(file.ok());
  EXPECT_NE(file.status().message().find("expert 7"), std::string::npos);
  std::filesystem::remove(bad);
}

TEST(PackedModelErrors, TruncatedFilesCorruptIndexesAndUnknownCodecsOrVersionsAreRefused) {
  const std::string packed = Packed(testing::TierTestModel("tiny"), "zstd:3");
  const std::string good = ReadAll(packed);
  const std::string bad = packed + ".bad.gguf";
  auto expect_refused = [&](const std::string& bytes, const std::string& want, StatusCode code) {
    WriteAll(bad, bytes);
    auto f = storage::ReadGgufFile(bad);
    ASSERT_FALSE(f.ok()) << want;
    EXPECT_EQ(f.status().code(), code) << f.status().ToString();
    EXPECT_NE(f.status().message().find(want), std::string::npos) << f.status().message();
    EXPECT_NE(f.status().message().find(bad), std::string::npos) << "names the file";
  };
  auto header = storage::ReadGgufFile(packed);
  ASSERT_TRUE(header.ok());
  const uint32_t layer = header->pack()->layers.front().layer;
  const std::string k = "strata.pack.blk." + std::to_string(layer) + ".";

  expect_refused(good.substr(0, good.size() - 8192), "past the end of the file",
                 StatusCode::kCorruption);
  const uint32_t v2 = 2;
  expect_refused(PatchValue(good, "strata.pack.version", false, 0, std::string((char*)&v2, 4)),
                 "format version 2", StatusCode::kUnsupported);
  expect_refused(PatchValue(good, k + "codec", true, 3, "\x07"), "unknown codec 7",
                 StatusCode::kUnsupported);
  const uint64_t unaligned = 4097;
  expect_refused(PatchValue(good, k + "offset", true, 8, std::string((char*)&unaligned, 8)),
                 "expert 1: bundle [4097", StatusCode::kCorruption);
  const uint64_t huge = uint64_t{1} << 40;
  expect_refused(PatchValue(good, k + "stored", true, 0, std::string((char*)&huge, 8)),
                 "outside its", StatusCode::kCorruption);
  expect_refused(PatchValue(good, k + "raw", true, 16, std::string((char*)&huge, 8)),
                 "expert 2: raw size", StatusCode::kCorruption);
  std::filesystem::remove(bad);
}

TEST(PackedModelErrors, AnInterruptedOrFailedPackLeavesNoOutputAndTheInputUntouched) {
  const std::string in = testing::TierTestModel("tiny");
  const std::string before = ReadAll(in);
  const std::string out = in + ".interrupted.gguf";
  storage::PackOptions o;
  o.codec = *storage::ParseCodecChoice("zstd:3");
  o.fail_after_bytes = before.size() / 2;  // the disk fills half way
  auto r = storage::PackModel(in, out, o, nullptr);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kResourceExhausted) << r.status().ToString();
  EXPECT_NE(r.status().message().find("disk full"), std::string::npos);
  EXPECT_FALSE(std::filesystem::exists(out));
  EXPECT_FALSE(std::filesystem::exists(out + ".tmp"));

  o.fail_after_bytes = 0;
  RequestInterrupt();  // Ctrl-C
  r = storage::PackModel(in, out, o, nullptr);
  ClearInterrupt();
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kCancelled);
  EXPECT_FALSE(std::filesystem::exists(out));
  EXPECT_FALSE(std::filesystem::exists(out + ".tmp"));
  EXPECT_TRUE(ReadAll(in) == before) << "the input changed";

  // OUT = IN, and packing a packed file, are refused before anything is written.
  r = storage::PackModel(in, in, o, nullptr);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("is the input file"), std::string::npos);
  const std::string packed = Packed(in, "none");
  r = storage::PackModel(packed, out, o, nullptr);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("already packed"), std::string::npos);
  EXPECT_TRUE(ReadAll(in) == before);
}

TEST(BundleCodec, EveryCodecRoundTripsAndRejectsDamage) {
  std::vector<uint8_t> raw(3 * 4096 + 6);
  for (size_t i = 0; i < raw.size(); ++i) raw[i] = static_cast<uint8_t>((i % 2) ? 0x3C : i * 7);
  storage::BundleLayout layout;
  layout.bytes = {4096, 8192, 6};
  layout.group_width = {2, 2, 2};
  for (const char* c : {"none", "lz4", "zstd", "zstd:19", "lz4+group", "zstd:1+group"}) {
    SCOPED_TRACE(c);
    auto choice = storage::ParseCodecChoice(c);
    ASSERT_TRUE(choice.ok());
    std::vector<uint8_t> stored, back(raw.size());
    const uint8_t codec = storage::EncodeBundle(raw, layout, *choice, &stored);
    EXPECT_EQ(codec == 0, std::string(c) == "none");
    const uint64_t sum = storage::BundleChecksum(stored);
    ASSERT_TRUE(storage::DecodeBundle(codec, stored, layout, true, sum, back).ok());
    EXPECT_EQ(back, raw);
    stored[stored.size() / 2] ^= 1;
    Status s = storage::DecodeBundle(codec, stored, layout, true, sum, back);
    EXPECT_EQ(s.code(), StatusCode::kCorruption);
    EXPECT_NE(s.message().find("checksum mismatch"), std::string::npos);
    if (codec != 0) {
      // Without the checksum, damaged or truncated data still fails cleanly.
      stored.resize(stored.size() / 2);
      EXPECT_FALSE(storage::DecodeBundle(codec, stored, layout, false, 0, back).ok());
    }
  }
  EXPECT_FALSE(storage::DecodeBundle(0x25, raw, layout, false, 0, raw).ok());
  for (const char* bad : {"zip", "lz4:3", "zstd:0", "zstd:99", "zstd:", "none+group", ""}) {
    auto r = storage::ParseCodecChoice(bad);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_NE(r.status().message().find("--codec"), std::string::npos);
  }
}

}  // namespace
}  // namespace strata::engine

static ::testing::Environment* const kCleanup =
    ::testing::AddGlobalTestEnvironment(new strata::testing::TierTestModelCleanup);

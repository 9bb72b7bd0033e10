// Every rejection path of the GGUF reader, on hand-built broken files: each must fail
// with a Corruption/Unsupported status whose one-line message names the file and the
// offending field, never crash (this suite also runs under ASan+UBSan).
#include <gtest/gtest.h>

#include "storage/gguf.h"
#include "storage/gguf_writer.h"
#include "tests/storage/gguf_bytes.h"

namespace strata::storage {
namespace {

using testing::GgufBytes;

Status Parse(const std::string& bytes, const std::string& name = "broken.gguf") {
  auto file = NewMemoryFile(name, bytes);
  return ReadGguf(*file).status();
}

// Asserts a rejection whose message names the file and contains `needle`.
void ExpectRejected(const std::string& bytes, const std::string& needle) {
  Status s = Parse(bytes);
  ASSERT_FALSE(s.ok()) << "accepted a broken file; expected: " << needle;
  EXPECT_NE(s.message().find("broken.gguf"), std::string::npos) << s.ToString();
  EXPECT_NE(s.message().find(needle), std::string::npos) << s.ToString();
  EXPECT_EQ(s.message().find('\n'), std::string::npos) << "error must be one line";
}

// A valid file: two KVs, two F32 tensors of 8 values each.
GgufBytes ValidFile() {
  GgufBytes b;
  b.Header(2, 2).KvStr("general.architecture", "test").KvU32("general.alignment", 32);
  b.Tensor("a", {8}, 0, 0).Tensor("b", {8}, 0, 32);
  b.AlignThenData(32, 64);
  return b;
}

TEST(GgufReject, ValidBaselineParses) {
  auto file = NewMemoryFile("ok.gguf", ValidFile().str());
  auto parsed = ReadGguf(*file);
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  EXPECT_EQ(parsed->tensors().size(), 2u);
}

TEST(GgufReject, EveryTruncationFails) {
  const std::string full = ValidFile().str();
  // Every prefix shorter than the end of the last tensor's data is broken somewhere:
  // in the header, a KV, a tensor info, or the data.
  for (size_t len = 0; len < full.size(); ++len) {
    Status s = Parse(full.substr(0, len));
    ASSERT_FALSE(s.ok()) << "prefix of " << len << " bytes accepted";
    EXPECT_EQ(s.code(), StatusCode::kCorruption) << len << ": " << s.ToString();
    EXPECT_NE(s.message().find("broken.gguf"), std::string::npos);
  }
}

TEST(GgufReject, TruncatedAtSectionBoundariesSaysWhat) {
  const std::string full = ValidFile().str();
  ExpectRejected(full.substr(0, 2), "magic");
  ExpectRejected(full.substr(0, 6), "version");
  ExpectRejected(full.substr(0, 12), "tensor count");
  ExpectRejected(full.substr(0, 24), "metadata count");
  ExpectRejected(full.substr(0, full.size() - 1), "past the end of the file");
}

TEST(GgufReject, BadMagicAndVersions) {
  ExpectRejected(GgufBytes().U32(0x12345678).U32(3).U64(0).U64(0).str(), "not a GGUF file");
  ExpectRejected(GgufBytes().Header(0, 0, 1).str(), "version 1");
  ExpectRejected(GgufBytes().Header(0, 0, 4).str(), "unknown GGUF version 4");
}

TEST(GgufReject, HugeCounts) {
  ExpectRejected(GgufBytes().Header(0, UINT64_MAX).str(), "metadata count");
  ExpectRejected(GgufBytes().Header(UINT64_MAX, 0).str(), "tensor count");
  ExpectRejected(GgufBytes().Header(0, 1'000'000).Raw(std::string(100, 'x')).str(),
                 "metadata count 1000000 cannot fit");
}

TEST(GgufReject, HugeStringLengths) {
  ExpectRejected(GgufBytes().Header(0, 1).U64(UINT64_MAX).Raw(std::string(64, 'x')).str(),
                 "string length");
  ExpectRejected(
      GgufBytes().Header(0, 1).Str("k").U32(8).U64(1ull << 40).Raw(std::string(64, 'x')).str(),
      "string length");
  // A string value of 65 MiB that the file does hold: over the 64 MiB limit, refused
  // before it is allocated (a huge file could otherwise claim gigabytes).
  ExpectRejected(GgufBytes()
                     .Header(0, 1)
                     .Str("k")
                     .U32(8)
                     .U64(65ull << 20)
                     .Raw(std::string((65ull << 20) + 64, 'x'))
                     .str(),
                 "exceeds the limit");
  // A key longer than GGUF's 65535-byte limit, even if the file holds it.
  ExpectRejected(GgufBytes().Header(0, 1).Str(std::string(70000, 'k')).U32(4).U32(1).str(),
                 "exceeds the limit");
}

TEST(GgufReject, HugeAndNestedArrays) {
  ExpectRejected(GgufBytes().Header(0, 1).Str("arr").U32(9).U32(4).U64(UINT64_MAX).str(),
                 "array length");
  ExpectRejected(GgufBytes()
                     .Header(0, 1)
                     .Str("arr")
                     .U32(9)
                     .U32(0)
                     .U64(1ull << 23)
                     .Raw(std::string((1 << 23) + 16, '\0'))
                     .str(),
                 "exceeds the limit");
  GgufBytes deep;
  deep.Header(0, 1).Str("deep");
  deep.U32(9);
  for (int i = 0; i < 6; ++i) deep.U32(9).U64(1);  // arrays of arrays of arrays ...
  deep.U32(4).U64(1).U32(7);
  ExpectRejected(deep.str(), "nested deeper");
}

TEST(GgufReject, BadValueTypes) {
  ExpectRejected(GgufBytes().Header(0, 1).Str("k").U32(13).U32(0).str(), "unknown value type 13");
  ExpectRejected(GgufBytes().Header(0, 1).Str("k").U32(9).U32(99).U64(1).str(),
                 "unknown value type 99");
  ExpectRejected(GgufBytes().Header(0, 1).Str("flag").U32(7).U8(2).str(), "neither 0 nor 1");
}

TEST(GgufReject, KeysMustBeUniqueNonEmptyUtf8) {
  ExpectRejected(GgufBytes().Header(0, 2).KvU32("x", 1).KvU32("x", 2).str(),
                 "duplicate metadata key 'x'");
  ExpectRejected(GgufBytes().Header(0, 1).KvU32("", 1).str(), "empty key");
  ExpectRejected(GgufBytes().Header(0, 1).KvU32("bad\xC3\x28", 1).str(), "not valid UTF-8");
  ExpectRejected(GgufBytes().Header(0, 1).KvU32("\xED\xA0\x80", 1).str(), "not valid UTF-8");
}

TEST(GgufReject, BadAlignment) {
  ExpectRejected(GgufBytes().Header(0, 1).KvU32("general.alignment", 0).str(), "general.alignment");
  ExpectRejected(GgufBytes().Header(0, 1).KvU32("general.alignment", 48).str(),
                 "general.alignment");
  ExpectRejected(GgufBytes().Header(0, 1).KvStr("general.alignment", "32").str(),
                 "general.alignment");
}

TEST(GgufReject, BadTensorInfos) {
  auto one_tensor = [](auto&& add_tensor) {
    GgufBytes b;
    b.Header(1, 0);
    add_tensor(b);
    b.AlignThenData(32, 4096);
    return b.str();
  };
  ExpectRejected(one_tensor([](GgufBytes& b) { b.Tensor("t", {}, 0, 0); }), "n_dims 0");
  ExpectRejected(one_tensor([](GgufBytes& b) {
                   b.Tensor("t", {1, 1, 1, 1, 1}, 0, 0);
                 }),
                 "n_dims 5");
  ExpectRejected(one_tensor([](GgufBytes& b) { b.Tensor("t", {8}, 77, 0); }),
                 "unknown GGML type 77");
  ExpectRejected(one_tensor([](GgufBytes& b) { b.Tensor("t", {8}, 4, 0); }), "unknown GGML type 4");
  ExpectRejected(one_tensor([](GgufBytes& b) { b.Tensor("t", {33}, 8, 0); }), "not a multiple");
  ExpectRejected(one_tensor([](GgufBytes& b) { b.Tensor("t", {1ull << 63}, 0, 0); }), "negative");
  ExpectRejected(one_tensor([](GgufBytes& b) {
                   b.Tensor("t", {1ull << 32, 1ull << 32}, 0, 0);
                 }),
                 "overflows");
  ExpectRejected(one_tensor([](GgufBytes& b) { b.Tensor("", {8}, 0, 0); }), "empty name");
  ExpectRejected(one_tensor([](GgufBytes& b) { b.Tensor("\xFF", {8}, 0, 0); }), "not valid UTF-8");
  ExpectRejected(one_tensor([](GgufBytes& b) { b.Tensor(std::string(300, 'n'), {8}, 0, 0); }),
                 "exceeds the limit");
}

TEST(GgufReject, TensorDataPlacement) {
  // Offset past EOF.
  ExpectRejected(GgufBytes().Header(1, 0).Tensor("t", {8}, 0, 1 << 20).AlignThenData(32, 64).str(),
                 "past the end of the file");
  // Offset + size overflow.
  ExpectRejected(
      GgufBytes().Header(1, 0).Tensor("t", {8}, 0, UINT64_MAX - 31).AlignThenData(32, 64).str(),
      "past the end of the file");
  // Misaligned data.
  ExpectRejected(GgufBytes().Header(1, 0).Tensor("t", {8}, 0, 4).AlignThenData(32, 64).str(),
                 "not a multiple of the alignment 32");
  // Overlap: b starts inside a.
  ExpectRejected(GgufBytes()
                     .Header(2, 0)
                     .Tensor("a", {16}, 0, 0)
                     .Tensor("b", {8}, 0, 32)
                     .AlignThenData(32, 128)
                     .str(),
                 "overlap");
  // Duplicate names.
  ExpectRejected(GgufBytes()
                     .Header(2, 0)
                     .Tensor("a", {8}, 0, 0)
                     .Tensor("a", {8}, 0, 32)
                     .AlignThenData(32, 64)
                     .str(),
                 "duplicate tensor name 'a'");
  // Data section cannot start past EOF.
  ExpectRejected(GgufBytes().Header(1, 0).Tensor("t", {8}, 0, 0).str(), "data section would start");
}

TEST(GgufReject, ErrorsNameTheRealPath) {
  auto parsed = ReadGgufFile("/nonexistent/dir/model.gguf");
  ASSERT_FALSE(parsed.ok());
  EXPECT_EQ(parsed.status().code(), StatusCode::kNotFound);
  EXPECT_NE(parsed.status().message().find("/nonexistent/dir/model.gguf"), std::string::npos);
}

}  // namespace
}  // namespace strata::storage

// Writer -> reader round trip: metadata of every type (arrays and nested arrays too)
// and tensor bytes come back identical; the writer is all-or-nothing.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "storage/ggml_types.h"
#include "storage/gguf.h"
#include "storage/gguf_writer.h"
#include "util/cancel.h"

namespace strata::storage {
namespace {

std::string TempPath(const std::string& name) {
  return (std::filesystem::temp_directory_path() /
          (name + "-" + std::to_string(::getpid()) + ".gguf"))
      .string();
}

GgufWriter::Producer Bytes(std::string bytes) {
  return
      [bytes = std::move(bytes)](ByteSink& sink) { return sink.Write(bytes.data(), bytes.size()); };
}

std::vector<std::pair<std::string, GgufValue>> EveryType() {
  return {
      {"u8", GgufValue::Unsigned(GgufType::kU8, 200)},
      {"i8", GgufValue::Signed(GgufType::kI8, -100)},
      {"u16", GgufValue::Unsigned(GgufType::kU16, 60000)},
      {"i16", GgufValue::Signed(GgufType::kI16, -30000)},
      {"u32", GgufValue::U32(4000000000u)},
      {"i32", GgufValue::I32(-2000000000)},
      {"f32", GgufValue::F32(3.25f)},
      {"bool", GgufValue::Bool(true)},
      {"str", GgufValue::String("héllo ☃")},
      {"u64", GgufValue::U64(UINT64_MAX)},
      {"i64", GgufValue::Signed(GgufType::kI64, INT64_MIN)},
      {"f64", GgufValue::F64(-1e300)},
      {"arr.str", GgufValue::StringArray({"a", "", "ccc"})},
      {"arr.i32", GgufValue::I32Array({1, -2, 3})},
      {"arr.empty", GgufValue::Array(GgufType::kF32, {})},
      {"arr.nested",
       GgufValue::Array(GgufType::kArray, {GgufValue::U32Array({1, 2}), GgufValue::U32Array({3})})},
  };
}

TEST(GgufRoundTrip, MetadataAndBytesIdentical) {
  const std::string path = TempPath("roundtrip");
  GgufWriter writer(64);
  for (auto& [k, v] : EveryType()) writer.AddMetadata(k, v);
  std::string a(8 * 4, '\0'), b(34 * 3, '\0');
  for (size_t i = 0; i < a.size(); ++i) a[i] = static_cast<char>(i * 7);
  for (size_t i = 0; i < b.size(); ++i) b[i] = static_cast<char>(i * 13 + 1);
  ASSERT_TRUE(writer.AddTensor("a", GgmlType::kF32, {8}, Bytes(a)).ok());
  ASSERT_TRUE(
      writer.AddTensor("blk.0.ffn_up_exps.weight", GgmlType::kQ8_0, {32, 1, 3}, Bytes(b)).ok());
  ASSERT_TRUE(writer.WriteTo(path).ok());
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));

  auto parsed = ReadGgufFile(path);
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  const GgufFile& f = *parsed;
  EXPECT_EQ(f.version(), 3u);
  EXPECT_EQ(f.alignment(), 64u);
  EXPECT_EQ(f.data_offset() % 64, 0u);
  for (auto& [k, v] : EveryType()) {
    const GgufValue* got = f.Find(k);
    ASSERT_NE(got, nullptr) << k;
    EXPECT_EQ(*got, v) << k;
  }
  // Width-agnostic integer access.
  EXPECT_EQ(*f.GetUnsigned("u8"), 200u);
  EXPECT_EQ(*f.GetUnsigned("u32"), 4000000000u);
  EXPECT_FALSE(f.GetUnsigned("i8").ok());  // negative
  EXPECT_EQ(f.GetUnsigned("missing").status().code(), StatusCode::kNotFound);

  ASSERT_EQ(f.tensors().size(), 2u);
  const TensorInfo* ta = f.FindTensor("a");
  const TensorInfo* tb = f.FindTensor("blk.0.ffn_up_exps.weight");
  ASSERT_TRUE(ta && tb);
  EXPECT_EQ(ta->bytes, a.size());
  EXPECT_EQ(tb->bytes, b.size());
  EXPECT_EQ(tb->ShapeString(), "[32, 1, 3]");
  ASSERT_TRUE(tb->is_expert_stack());
  EXPECT_EQ(tb->expert_bytes(), 34u);
  EXPECT_EQ(tb->ExpertRange(2).offset, tb->file_offset + 68);

  auto file = OpenFile(path);
  ASSERT_TRUE(file.ok());
  std::string got_a(a.size(), '\0'), got_b(b.size(), '\0');
  ASSERT_TRUE((*file)->ReadExact(ta->file_offset, a.size(), got_a.data()).ok());
  ASSERT_TRUE((*file)->ReadExact(tb->file_offset, b.size(), got_b.data()).ok());
  EXPECT_EQ(got_a, a);
  EXPECT_EQ(got_b, b);
  std::filesystem::remove(path);
}

TEST(GgufWriter, ProducerWritingTheWrongSizeLeavesNoFile) {
  const std::string path = TempPath("short");
  GgufWriter writer;
  ASSERT_TRUE(writer.AddTensor("a", GgmlType::kF32, {8}, Bytes(std::string(16, 'x'))).ok());
  Status s = writer.WriteTo(path);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("'a'"), std::string::npos);
  EXPECT_FALSE(std::filesystem::exists(path));
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
}

TEST(GgufWriter, InterruptLeavesNoFileAndKeepsTheOldOne) {
  const std::string path = TempPath("interrupt");
  { std::ofstream(path) << "previous contents"; }
  GgufWriter writer;
  ASSERT_TRUE(
      writer
          .AddTensor(
              "a", GgmlType::kF32, {8},
              [](ByteSink& sink) -> Status {
                RequestInterrupt();  // as if Ctrl-C arrived while this tensor was being produced
                std::string zeros(32, '\0');
                return sink.Write(zeros.data(), zeros.size());
              })
          .ok());
  Status s = writer.WriteTo(path);
  ClearInterrupt();
  EXPECT_EQ(s.code(), StatusCode::kCancelled);
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
  std::ifstream in(path);
  std::string old((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(old, "previous contents");
  std::filesystem::remove(path);
}

TEST(GgufWriter, RejectsBadTensorDeclarations) {
  GgufWriter writer;
  EXPECT_FALSE(writer.AddTensor("q", GgmlType::kQ4_K, {100}, Bytes("")).ok());
  EXPECT_TRUE(writer.AddTensor("x", GgmlType::kF32, {1}, Bytes("abcd")).ok());
  EXPECT_FALSE(writer.AddTensor("x", GgmlType::kF32, {1}, Bytes("abcd")).ok());
  EXPECT_FALSE(writer.AddTensor("y", GgmlType::kF32, {}, Bytes("")).ok());
}

TEST(GgmlTypes, BlockGeometryMatchesGgml) {
  struct Expect {
    GgmlType t;
    uint32_t elems, bytes;
  };
  for (auto e :
       {Expect{GgmlType::kF32, 1, 4},  {GgmlType::kF16, 1, 2},        {GgmlType::kBF16, 1, 2},
        {GgmlType::kQ4_0, 32, 18},     {GgmlType::kQ4_1, 32, 20},     {GgmlType::kQ5_0, 32, 22},
        {GgmlType::kQ5_1, 32, 24},     {GgmlType::kQ8_0, 32, 34},     {GgmlType::kQ2_K, 256, 84},
        {GgmlType::kQ3_K, 256, 110},   {GgmlType::kQ4_K, 256, 144},   {GgmlType::kQ5_K, 256, 176},
        {GgmlType::kQ6_K, 256, 210},   {GgmlType::kIQ2_XXS, 256, 66}, {GgmlType::kIQ2_XS, 256, 74},
        {GgmlType::kIQ3_XXS, 256, 98}, {GgmlType::kIQ1_S, 256, 50},   {GgmlType::kIQ4_NL, 32, 18},
        {GgmlType::kIQ3_S, 256, 110},  {GgmlType::kIQ2_S, 256, 82},   {GgmlType::kIQ4_XS, 256, 136},
        {GgmlType::kI8, 1, 1},         {GgmlType::kI32, 1, 4},        {GgmlType::kIQ1_M, 256, 56},
        {GgmlType::kMXFP4, 32, 17},    {GgmlType::kNVFP4, 64, 36}}) {
    const auto& info = TypeInfo(e.t);
    EXPECT_EQ(info.block_elems, e.elems) << info.name;
    EXPECT_EQ(info.block_bytes, e.bytes) << info.name;
  }
  // docs/GGUF.md §3.2/§4.2 worked examples: bytes per expert slice.
  EXPECT_EQ(*RowBytes(GgmlType::kQ4_K, 4096) * 2048, 4718592u);
  EXPECT_EQ(*RowBytes(GgmlType::kMXFP4, 4096) * 2048, 4456448u);
  EXPECT_EQ(*RowBytes(GgmlType::kIQ2_XXS, 5120) * 2304, 3041280u);
  EXPECT_FALSE(FindGgmlType(4).has_value());
  EXPECT_EQ(GgmlTypeFromName("Q4_K"), GgmlType::kQ4_K);
}

}  // namespace
}  // namespace strata::storage

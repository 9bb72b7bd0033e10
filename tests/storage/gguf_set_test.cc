// Split GGUF sets: the writer's shards read back as one model from any shard, every
// tensor's bytes where file_offset says in the set's address space; and a broken set
// is refused with one line naming the file.
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "storage/file_extents.h"
#include "storage/gguf.h"
#include "storage/gguf_writer.h"

namespace strata::storage {
namespace {

class GgufSetTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / ("strata-set-" + std::to_string(::getpid()));
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  static std::string Bytes(int tensor, uint64_t n) {
    std::string s(n, '\0');
    for (uint64_t i = 0; i < n; ++i) s[i] = static_cast<char>(tensor * 31 + i * 7);
    return s;
  }

  // Five F32 tensors of 1000 values (4000 bytes) in shards of at most 9000 bytes: 3 shards.
  std::vector<std::string> WriteSet(const std::string& name, int tensors = 5, uint64_t max = 9000) {
    GgufWriter w;
    w.AddMetadata("general.architecture", GgufValue::String("test"));
    for (int t = 0; t < tensors; ++t) {
      std::string b = Bytes(t, 4000);
      EXPECT_TRUE(w.AddTensor("t" + std::to_string(t), GgmlType::kF32, {1000},
                              [b](ByteSink& sink) { return sink.Write(b.data(), b.size()); })
                      .ok());
    }
    auto paths = w.WriteSplitTo((dir_ / name).string(), max);
    EXPECT_TRUE(paths.ok()) << paths.status().message();
    return *paths;
  }

  std::filesystem::path dir_;
};

TEST_F(GgufSetTest, AnyShardOpensTheWholeSet) {
  const auto paths = WriteSet("m.gguf");
  ASSERT_EQ(paths.size(), 3u);
  EXPECT_EQ(paths[0], (dir_ / "m-00001-of-00003.gguf").string());
  for (const std::string& p : paths) {
    auto set = ReadGgufFile(p);
    ASSERT_TRUE(set.ok()) << set.status().message();
    EXPECT_TRUE(set->is_split());
    EXPECT_EQ(set->shards().size(), 3u);
    EXPECT_EQ(set->shards()[0].path, paths[0]);
    EXPECT_EQ(set->GetStringOr("general.architecture", ""), "test");  // the first shard's metadata
    ASSERT_EQ(set->tensors().size(), 5u);
    auto data = OpenGgufData(*set);
    ASSERT_TRUE(data.ok());
    // Read by file_offset in the set's address space, and through a mapping of it.
    auto mapping = MapFiles(FileExtentsOf(*set));
    ASSERT_TRUE(mapping.ok());
    for (int t = 0; t < 5; ++t) {
      const TensorInfo* info = set->FindTensor("t" + std::to_string(t));
      ASSERT_NE(info, nullptr);
      EXPECT_EQ(info->shard, static_cast<uint32_t>(t / 2));
      std::string got(4000, '\0');
      ASSERT_TRUE((*data)->ReadExact(info->file_offset, 4000, got.data()).ok());
      EXPECT_EQ(got, Bytes(t, 4000)) << "t" << t;
      EXPECT_EQ(std::string(reinterpret_cast<const char*>(mapping->data) + info->file_offset, 4000), Bytes(t, 4000));
    }
    ::munmap(const_cast<uint8_t*>(mapping->data), mapping->bytes);
  }
}

TEST_F(GgufSetTest, ShardBasesLeaveRoomForAlignedReads) {
  const auto paths = WriteSet("m.gguf");
  auto set = ReadGgufFile(paths[1]);
  ASSERT_TRUE(set.ok());
  for (size_t i = 1; i < set->shards().size(); ++i) {
    const GgufShard& prev = set->shards()[i - 1];
    EXPECT_EQ(set->shards()[i].base % kShardBaseAlignment, 0u);
    EXPECT_GE(set->shards()[i].base, (prev.base + prev.size + 4095) / 4096 * 4096);
  }
}

std::string Error(const std::string& path) {
  auto r = ReadGgufFile(path);
  return r.ok() ? "opened" : r.status().message();
}

TEST_F(GgufSetTest, BrokenSetsAreRefusedNamingTheFile) {
  const auto paths = WriteSet("m.gguf");
  // A missing shard.
  std::filesystem::rename(paths[1], dir_ / "aside");
  EXPECT_NE(Error(paths[0]).find(paths[1] + ": missing shard 2 of 3"), std::string::npos) << Error(paths[0]);
  // A shard of another set (another count).
  const auto other = WriteSet("o.gguf", 3, 5000);  // 3 shards of one tensor
  std::filesystem::copy_file(other[1], paths[1]);
  EXPECT_NE(Error(paths[0]).find(paths[1] + ": a shard of another set"), std::string::npos) << Error(paths[0]);
  std::filesystem::remove(paths[1]);
  // A shard in the wrong place (split.no).
  std::filesystem::copy_file(paths[2], paths[1]);
  EXPECT_NE(Error(paths[0]).find(paths[1] + ": split.no is 2, expected 1"), std::string::npos) << Error(paths[0]);
  std::filesystem::remove(paths[1]);
  std::filesystem::rename(dir_ / "aside", paths[1]);
  ASSERT_EQ(Error(paths[0]), "opened");
  // A truncated shard.
  std::filesystem::resize_file(paths[2], std::filesystem::file_size(paths[2]) - 100);
  EXPECT_NE(Error(paths[1]).find(paths[2] + ": tensor 't4'"), std::string::npos) << Error(paths[1]);
  // A shard file whose name is not PREFIX-NNNNN-of-NNNNN.gguf.
  std::filesystem::copy_file(paths[0], dir_ / "renamed.gguf");
  EXPECT_NE(Error((dir_ / "renamed.gguf").string()).find("its name is not PREFIX-NNNNN-of-NNNNN.gguf"),
            std::string::npos);
}

TEST_F(GgufSetTest, ATensorInTwoShardsIsRefused) {
  // Two shards that both hold 't0', with a consistent split.* header.
  for (int no = 0; no < 2; ++no) {
    GgufWriter w;
    w.AddMetadata("split.no", GgufValue::Unsigned(GgufType::kU16, no));
    w.AddMetadata("split.count", GgufValue::Unsigned(GgufType::kU16, 2));
    w.AddMetadata("split.tensors.count", GgufValue::I32(2));
    std::string b = Bytes(0, 64);
    ASSERT_TRUE(w.AddTensor("t0", GgmlType::kF32, {16}, [b](ByteSink& s) { return s.Write(b.data(), b.size()); }).ok());
    ASSERT_TRUE(w.WriteTo(ShardPath((dir_ / "d").string(), no + 1, 2)).ok());
  }
  const std::string second = ShardPath((dir_ / "d").string(), 2, 2);
  EXPECT_NE(Error(second).find(second + ": tensor 't0' is also in"), std::string::npos) << Error(second);
}

TEST(ShardNames, ParseAndFormatAsLlamaCpp) {
  EXPECT_EQ(ShardPath("/m/DeepSeek-R1-IQ1_S", 2, 3), "/m/DeepSeek-R1-IQ1_S-00002-of-00003.gguf");
  auto n = ParseShardPath("/m/DeepSeek-R1-IQ1_S-00002-of-00003.gguf");
  ASSERT_TRUE(n.has_value());
  EXPECT_EQ(n->prefix, "/m/DeepSeek-R1-IQ1_S");
  EXPECT_EQ(n->no, 2u);
  EXPECT_EQ(n->count, 3u);
  EXPECT_FALSE(ParseShardPath("model.gguf").has_value());
  EXPECT_FALSE(ParseShardPath("m-00004-of-00003.gguf").has_value());
  EXPECT_FALSE(ParseShardPath("m-00000-of-00003.gguf").has_value());
  EXPECT_FALSE(ParseShardPath("m-00001-of-00003.bin").has_value());
}

}  // namespace
}  // namespace strata::storage

// OutputFile: the bytes that reach PATH are exactly the bytes appended (and patched),
// through both write paths, whatever the sizes of the pieces; an uncommitted file
// leaves nothing behind.
#include "storage/output_file.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include "tests/skip_or_fail.h"

namespace strata::storage {
namespace {

using Io = OutputFile::Io;

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// A directory on a real filesystem (the build tree), where O_DIRECT is normally
// available; /tmp may be tmpfs.
std::string Dir() {
  const std::string d = std::filesystem::current_path().string() + "/output_file_test." +
                        std::to_string(::getpid());
  std::filesystem::create_directories(d);
  return d;
}

std::string RandomBytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::string s(n, '\0');
  for (char& c : s) c = static_cast<char>(rng());
  return s;
}

class OutputFileTest : public testing::TestWithParam<Io> {
 protected:
  void TearDown() override { std::filesystem::remove_all(dir_); }
  const std::string dir_ = Dir();
};

TEST_P(OutputFileTest, PiecesOfEverySizeArriveInOrder) {
  const std::string path = dir_ + "/pieces.bin";
  // Crosses several 8 MiB buffers with pieces of 1 byte to 3 MiB, none block-aligned.
  const std::string want = RandomBytes((21u << 20) + 12345, 1);
  auto f = OutputFile::Create(path, GetParam());
  ASSERT_TRUE(f.ok()) << f.status().ToString();
  if (GetParam() == Io::kBuffered) {
    EXPECT_FALSE((*f)->direct());
  } else if (!(*f)->direct()) {
    STRATA_SKIP_OR_FAIL("this filesystem refuses O_DIRECT; the Buffered variant covers its path");
  }
  std::mt19937 rng(2);
  size_t at = 0;
  while (at < want.size()) {
    const size_t n = std::min<size_t>(want.size() - at, 1 + rng() % (3u << 20));
    ASSERT_TRUE((*f)->Append(want.data() + at, n).ok());
    at += n;
  }
  EXPECT_EQ((*f)->bytes_written(), want.size());
  ASSERT_TRUE((*f)->Commit().ok());
  EXPECT_EQ(ReadAll(path), want);
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
}

TEST_P(OutputFileTest, FlushMidwayShowsTheBytesAndAppendingContinues) {
  const std::string path = dir_ + "/flush.bin";
  std::string want = RandomBytes(5000, 3);
  auto f = OutputFile::Create(path, GetParam());
  ASSERT_TRUE(f.ok());
  ASSERT_TRUE((*f)->Append(want.data(), want.size()).ok());
  ASSERT_TRUE((*f)->Flush().ok());
  EXPECT_EQ(ReadAll((*f)->tmp_path()), want) << "readable before Commit, at its exact length";
  const std::string more = RandomBytes(9u << 20, 4);  // the partial block is rewritten
  ASSERT_TRUE((*f)->Append(more.data(), more.size()).ok());
  want += more;
  ASSERT_TRUE((*f)->Flush().ok());
  EXPECT_EQ(ReadAll((*f)->tmp_path()), want);
  ASSERT_TRUE((*f)->Append("x", 1).ok());
  want += "x";
  ASSERT_TRUE((*f)->Commit().ok());
  EXPECT_EQ(ReadAll(path), want);
}

TEST_P(OutputFileTest, WriteAtPatchesBytesOnDiskAndStillBuffered) {
  const std::string path = dir_ + "/patch.bin";
  std::string want = RandomBytes((8u << 20) + 6000, 5);
  auto f = OutputFile::Create(path, GetParam());
  ASSERT_TRUE(f.ok());
  ASSERT_TRUE((*f)->Append(want.data(), want.size()).ok());
  // A header at the start, a range across a block boundary, and the last bytes, which
  // sit in the partial block a direct writer keeps buffered.
  for (const auto& [offset, n] : std::vector<std::pair<size_t, size_t>>{
           {0, 700}, {4000, 200}, {want.size() - 10, 10}}) {
    const std::string patch = RandomBytes(n, static_cast<uint32_t>(offset + 6));
    ASSERT_TRUE((*f)->WriteAt(offset, patch.data(), n).ok());
    want.replace(offset, n, patch);
  }
  const std::string tail = RandomBytes(3000, 7);
  ASSERT_TRUE((*f)->Append(tail.data(), tail.size()).ok());
  want += tail;
  ASSERT_TRUE((*f)->Commit().ok());
  EXPECT_EQ(ReadAll(path), want);
}

TEST_P(OutputFileTest, AnUncommittedFileLeavesNothing) {
  const std::string path = dir_ + "/dropped.bin";
  {
    auto f = OutputFile::Create(path, GetParam());
    ASSERT_TRUE(f.ok());
    const std::string bytes = RandomBytes(17u << 20, 8);  // a write is in flight
    ASSERT_TRUE((*f)->Append(bytes.data(), bytes.size()).ok());
    EXPECT_TRUE(std::filesystem::exists(path + ".tmp"));
  }
  EXPECT_FALSE(std::filesystem::exists(path));
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
}

TEST_P(OutputFileTest, AnEmptyFileCommits) {
  const std::string path = dir_ + "/empty.bin";
  auto f = OutputFile::Create(path, GetParam());
  ASSERT_TRUE(f.ok());
  ASSERT_TRUE((*f)->Commit().ok());
  EXPECT_EQ(std::filesystem::file_size(path), 0u);
}

INSTANTIATE_TEST_SUITE_P(Io, OutputFileTest, testing::Values(Io::kDirectIfPossible, Io::kBuffered),
                         [](const testing::TestParamInfo<Io>& p) {
                           return p.param == Io::kBuffered ? "Buffered" : "Direct";
                         });

}  // namespace
}  // namespace strata::storage

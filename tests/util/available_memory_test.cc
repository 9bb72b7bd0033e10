// What this process may use, read from a fake /proc and /sys/fs/cgroup: MemAvailable
// alone; a cgroup v2 limit with page cache not counted as held; a v1 limit; the
// tightest of nested limits; "max" and v1's near-2^63 "no limit"; a container whose
// /proc/self/cgroup names a path the mount does not show.
#include "util/available_memory.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

namespace strata {
namespace {

namespace fs = std::filesystem;

class AvailableMemoryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() / ("strata-mem-" + std::to_string(::getpid()));
    fs::create_directories(root_ / "proc/self");
    fs::create_directories(root_ / "cg");
    Write("proc/meminfo",
          "MemTotal:       24000000 kB\nMemFree:  1000 kB\nMemAvailable:   20000000 kB\n");
  }
  void TearDown() override { fs::remove_all(root_); }
  void Write(const std::string& rel, const std::string& text) {
    fs::create_directories((root_ / rel).parent_path());
    std::ofstream(root_ / rel) << text;
  }
  AvailableMemory Read() {
    return ReadAvailableMemory({(root_ / "proc").string(), (root_ / "cg").string()});
  }
  fs::path root_;
};

TEST_F(AvailableMemoryTest, MemAvailableWithoutACgroup) {
  const AvailableMemory m = Read();
  EXPECT_EQ(m.mem_available, 20000000ull * 1024);
  EXPECT_EQ(m.cgroup_limit, 0u);
  EXPECT_EQ(m.bytes(), 20000000ull * 1024);
  EXPECT_NE(m.Describe().find("MemAvailable"), std::string::npos);
}

TEST_F(AvailableMemoryTest, CgroupV2LimitLessWhatItHoldsButNotItsPageCache) {
  Write("proc/self/cgroup", "0::/box/job\n");
  Write("cg/cgroup.controllers", "cpu memory\n");
  Write("cg/box/job/memory.max", "4294967296\n");
  Write("cg/box/job/memory.current", "1073741824\n");     // 1 GiB charged...
  Write("cg/box/job/memory.stat", "anon 12345\nfile 805306368\n");  // ...768 MiB of it cache
  Write("cg/box/memory.max", "max\n");
  const AvailableMemory m = Read();
  EXPECT_EQ(m.cgroup_limit, 4ull << 30);
  EXPECT_EQ(m.cgroup_free, (4ull << 30) - (256ull << 20));
  EXPECT_EQ(m.bytes(), m.cgroup_free);
  EXPECT_NE(m.Describe().find("cgroup"), std::string::npos) << m.Describe();
}

TEST_F(AvailableMemoryTest, TheTightestOfNestedLimitsBinds) {
  Write("proc/self/cgroup", "0::/outer/inner\n");
  Write("cg/cgroup.controllers", "memory\n");
  Write("cg/outer/inner/memory.max", "8589934592\n");
  Write("cg/outer/memory.max", "2147483648\n");
  Write("cg/outer/memory.current", "0\n");
  const AvailableMemory m = Read();
  EXPECT_EQ(m.cgroup_limit, 2ull << 30);
  EXPECT_EQ(m.bytes(), 2ull << 30);
}

TEST_F(AvailableMemoryTest, CgroupV1LimitAndItsNoLimitValue) {
  Write("proc/self/cgroup", "4:memory:/process_api/abc\n3:cpuset:/\n");
  Write("cg/memory/process_api/abc/memory.limit_in_bytes", "3221225472\n");
  Write("cg/memory/process_api/abc/memory.usage_in_bytes", "1073741824\n");
  Write("cg/memory/process_api/abc/memory.stat", "cache 1\ntotal_cache 1073741824\n");
  Write("cg/memory/memory.limit_in_bytes", "9223372036854771712\n");  // v1's "unlimited"
  const AvailableMemory m = Read();
  EXPECT_EQ(m.cgroup_limit, 3ull << 30);
  EXPECT_EQ(m.cgroup_free, 3ull << 30) << "all of its usage is page cache";
  // A limit above MemAvailable does not raise what may be used.
  Write("cg/memory/process_api/abc/memory.limit_in_bytes", "99999999999999\n");
  EXPECT_EQ(Read().bytes(), 20000000ull * 1024);
}

TEST_F(AvailableMemoryTest, AContainerSeesItsLimitAtTheMountRoot) {
  // Inside a container the path names the host's hierarchy; the mount shows only ours.
  Write("proc/self/cgroup", "0::/system.slice/docker-1234.scope\n");
  Write("cg/cgroup.controllers", "memory\n");
  Write("cg/memory.max", "1073741824\n");
  Write("cg/memory.current", "0\n");
  EXPECT_EQ(Read().bytes(), 1ull << 30);
}

}  // namespace
}  // namespace strata

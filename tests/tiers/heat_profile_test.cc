// The heat profile: counts survive reopening; a profile for another model is refused
// with its path; two processes creating and updating one profile at once lose nothing.
#include "tiers/heat_profile.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>

namespace strata::tiers {
namespace {

std::string TempPath(const std::string& name) {
  const std::string p = "/var/tmp/strata-heat-" + std::to_string(::getpid()) + "-" + name;
  std::filesystem::remove(p);
  return p;
}

TEST(HeatProfile, CountsPersistAcrossOpens) {
  const std::string path = TempPath("persist");
  {
    auto p = HeatProfile::Open(path, 5, 77);
    ASSERT_TRUE(p.ok()) << p.status().ToString();
    const std::vector<uint64_t> add = {1, 0, 3, 0, 9};
    (*p)->Add(add);
    (*p)->Add(add);
  }
  auto p = HeatProfile::OpenExisting(path, 5, 77);
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  EXPECT_EQ((*p)->Counts(), (std::vector<uint64_t>{2, 0, 6, 0, 18}));
  EXPECT_EQ((*p)->runs(), 2u);
  std::filesystem::remove(path);
}

TEST(HeatProfile, AnotherModelsProfileIsRefused) {
  const std::string path = TempPath("other");
  ASSERT_TRUE(HeatProfile::Open(path, 5, 77).ok());
  auto wrong_size = HeatProfile::Open(path, 6, 77);
  ASSERT_FALSE(wrong_size.ok());
  EXPECT_NE(wrong_size.status().message().find(path), std::string::npos);
  EXPECT_FALSE(HeatProfile::Open(path, 5, 78).ok());
  EXPECT_EQ(HeatProfile::OpenExisting(TempPath("none"), 5, 77).status().code(),
            StatusCode::kNotFound);
  std::filesystem::remove(path);
}

TEST(HeatProfile, TwoProcessesUpdatingAtOnceLoseNothing) {
  const std::string path = TempPath("concurrent");
  constexpr uint64_t kBundles = 1000, kRounds = 300;
  pid_t children[2];
  for (pid_t& child : children) {
    child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
      // Both children create the profile and add to it at the same time.
      auto p = HeatProfile::Open(path, kBundles, 1);
      if (!p.ok()) ::_exit(2);
      const std::vector<uint64_t> ones(kBundles, 1);
      for (uint64_t r = 0; r < kRounds; ++r) (*p)->Add(ones);
      ::_exit(0);
    }
  }
  for (pid_t child : children) {
    int status = 0;
    ASSERT_EQ(::waitpid(child, &status, 0), child);
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "child failed: " << status;
  }
  auto p = HeatProfile::OpenExisting(path, kBundles, 1);
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  EXPECT_EQ((*p)->Counts(), std::vector<uint64_t>(kBundles, 2 * kRounds));
  EXPECT_EQ((*p)->runs(), 2 * kRounds);
  std::filesystem::remove(path);
}

}  // namespace
}  // namespace strata::tiers

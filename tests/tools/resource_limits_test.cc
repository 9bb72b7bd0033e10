// Resource limits, each with its documented behaviour: io_uring refused by the kernel
// (a seccomp filter makes io_uring_setup fail) falls back to the pread pool with a
// warning and the same output; a full disk while packing leaves no file; a context
// that fills stops generation with a message; an --io-depth out of range and a budget
// below the pinned weights are refused with one line naming the flag.
#include <gtest/gtest.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstddef>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace {

struct CliResult {
  int code = -1;
  std::string out;  // stdout and stderr
};

// Runs the strata binary with `args`; with `no_uring`, io_uring_setup fails with ENOSYS
// in the child, as on a kernel built or configured without io_uring.
CliResult Strata(const std::vector<std::string>& args, bool no_uring = false) {
  int fds[2];
  if (pipe(fds) != 0) return {};
  const pid_t pid = fork();
  if (pid == 0) {
    dup2(fds[1], 1);
    dup2(fds[1], 2);
    close(fds[0]);
    if (no_uring) {
      struct sock_filter filter[] = {
          BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
          BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
          BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
          BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
          BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 0, 1),
          BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (ENOSYS & SECCOMP_RET_DATA)),
          BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
      };
      struct sock_fprog prog = {static_cast<unsigned short>(std::size(filter)), filter};
      if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
          prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0) {
        _exit(99);
      }
    }
    std::vector<char*> argv = {const_cast<char*>(STRATA_BINARY)};
    for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    execv(STRATA_BINARY, argv.data());
    _exit(127);
  }
  close(fds[1]);
  CliResult r;
  std::array<char, 4096> buf;
  ssize_t n;
  while ((n = read(fds[0], buf.data(), buf.size())) > 0) r.out.append(buf.data(), n);
  close(fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return r;
}

class ResourceLimits : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("strata-limits-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::create_directories(dir_);
    // Under /var/tmp: O_DIRECT needs a real filesystem.
    model_ = "/var/tmp/strata-limits-" + std::to_string(::getpid()) + ".gguf";
    if (!std::filesystem::exists(model_)) {
      ASSERT_EQ(Strata({"make-model", "--preset", "tiny", "-o", model_}).code, 0);
    }
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  static void TearDownTestSuite() {
    std::filesystem::remove("/var/tmp/strata-limits-" + std::to_string(::getpid()) + ".gguf");
  }
  std::string Path(const std::string& name) const { return (dir_ / name).string(); }
  std::filesystem::path dir_;
  std::string model_;
};

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

TEST_F(ResourceLimits, WithoutIoUringTheReaderFallsBackToPreadAndTheOutputIsTheSame) {
  const std::vector<std::string> args = {"run",   "-m",           model_, "-p",
                                         "Hello", "-n",           "8",    "--temp",
                                         "0",     "--ram-budget", "3M",   "--logits-out"};
  std::vector<std::string> a = args, b = args;
  a.push_back(Path("a.bin"));
  b.push_back(Path("b.bin"));
  const CliResult with = Strata(a);
  ASSERT_EQ(with.code, 0) << with.out;
  EXPECT_NE(with.out.find("io uring"), std::string::npos) << with.out;
  const CliResult without = Strata(b, /*no_uring=*/true);
  ASSERT_NE(without.code, 99) << "seccomp is not available here";
  ASSERT_EQ(without.code, 0) << without.out;
  EXPECT_NE(without.out.find("io_uring unavailable"), std::string::npos) << without.out;
  EXPECT_NE(without.out.find("io pread"), std::string::npos) << without.out;
  EXPECT_EQ(ReadAll(Path("a.bin")), ReadAll(Path("b.bin")));
}

TEST_F(ResourceLimits, AFullDiskWhilePackingLeavesNoFile) {
  const std::string mnt = Path("small-disk");
  std::filesystem::create_directories(mnt);
  if (geteuid() != 0 || mount("tmpfs", mnt.c_str(), "tmpfs", 0, "size=1m") != 0) {
    GTEST_SKIP() << "needs root to mount a 1 MiB tmpfs (the simulated full disk is tested "
                    "in tiers_tests)";
  }
  const CliResult r = Strata({"pack", model_, mnt + "/packed.gguf", "--codec", "none"});
  const CliResult m = Strata({"make-model", "--preset", "tiny", "-o", mnt + "/made.gguf"});
  const auto left = std::distance(std::filesystem::directory_iterator(mnt),
                                  std::filesystem::directory_iterator());
  umount(mnt.c_str());
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find("disk full"), std::string::npos) << r.out;
  EXPECT_EQ(m.code, 1) << m.out;
  EXPECT_NE(m.out.find("disk full"), std::string::npos) << m.out;
  EXPECT_EQ(left, 0) << "no OUT and no OUT.tmp";
}

TEST_F(ResourceLimits, AFullContextStopsGenerationWithAMessage) {
  const CliResult r =
      Strata({"run", "-m", model_, "-p", "Hello", "-n", "100", "-c", "24", "--ignore-eos"});
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("context full (24 tokens)"), std::string::npos) << r.out;
}

TEST_F(ResourceLimits, OutOfRangeIoDepthAndABudgetBelowThePinnedWeightsAreRefused) {
  CliResult r =
      Strata({"run", "-m", model_, "-p", "x", "--ram-budget", "3M", "--io-depth", "100000"});
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("--io-depth must be between 1 and 4096"), std::string::npos) << r.out;
  r = Strata({"run", "-m", model_, "-p", "x", "--ram-budget", "100K"});
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("below the floor"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("smallest budget that works"), std::string::npos) << r.out;
}

}  // namespace

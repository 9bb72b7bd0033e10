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
#include "tests/skip_or_fail.h"

namespace {

struct CliResult {
  int code = -1;
  std::string out;  // stdout and stderr
};

// Runs the strata binary with `args`; with `no_uring`, io_uring_setup fails with ENOSYS
// in the child, as on a kernel built or configured without io_uring; with `cgroup_procs`,
// the child joins that memory cgroup before it starts.
CliResult Strata(const std::vector<std::string>& args, bool no_uring = false,
                 const std::string& cgroup_procs = "") {
  int fds[2];
  if (pipe(fds) != 0) return {};
  const pid_t pid = fork();
  if (pid == 0) {
    dup2(fds[1], 1);
    dup2(fds[1], 2);
    close(fds[0]);
    if (!cgroup_procs.empty()) {
      std::ofstream procs(cgroup_procs);
      procs << getpid() << std::flush;
      if (!procs) _exit(98);
    }
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

// A memory cgroup of its own (v1 or v2), removed at the end; needs root.
class MemoryCgroup {
 public:
  explicit MemoryCgroup(uint64_t limit) {
    const std::string name = "strata-test-" + std::to_string(getpid());
    namespace fs = std::filesystem;
    std::error_code ec;
    if (fs::exists("/sys/fs/cgroup/memory/cgroup.procs")) {  // v1
      dir_ = "/sys/fs/cgroup/memory/" + name;
      limit_file_ = "memory.limit_in_bytes";
    } else if (fs::exists("/sys/fs/cgroup/cgroup.controllers")) {  // v2
      std::ofstream("/sys/fs/cgroup/cgroup.subtree_control") << "+memory";
      dir_ = "/sys/fs/cgroup/" + name;
      limit_file_ = "memory.max";
    } else {
      return;
    }
    if (!fs::create_directory(dir_, ec)) {
      dir_.clear();
      return;
    }
    std::ofstream(dir_ + "/" + limit_file_) << limit << std::flush;
    uint64_t read_back = 0;
    std::ifstream(dir_ + "/" + limit_file_) >> read_back;
    if (read_back == 0 || read_back > limit) {
      fs::remove(dir_, ec);
      dir_.clear();
    }
  }
  ~MemoryCgroup() {
    if (!dir_.empty()) rmdir(dir_.c_str());
  }
  bool ok() const { return !dir_.empty(); }
  std::string procs() const { return dir_ + "/cgroup.procs"; }

 private:
  std::string dir_, limit_file_;
};

// "peak RSS 234 MiB" in a run's summary, in bytes; 0 if absent.
double PeakRss(const std::string& out) {
  const size_t at = out.find("peak RSS ");
  if (at == std::string::npos) return 0;
  const double value = std::stod(out.substr(at + 9));
  const std::string unit = out.substr(out.find(' ', at + 9) + 1, 3);
  return value * (unit == "GiB" ? 1 << 30 : unit == "MiB" ? 1 << 20 : 1 << 10);
}

uint64_t JsonNumber(const std::string& json, const std::string& key) {
  const size_t at = json.find("\"" + key + "\": ");
  return at == std::string::npos ? 0 : std::stoull(json.substr(at + key.size() + 4));
}

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

TEST_F(ResourceLimits, WithoutIoUringTheReaderFallsBackToPreadAndTheOutputIsTheSame) {
  const std::vector<std::string> args = {"run",   "-m",           model_, "-p",
                                         "Hello", "-n",           "8",    "--temp",
                                         "0",     "--ram-budget", "3M",   "-c", "64", "-b", "16", "--logits-out"};
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
    STRATA_SKIP_OR_FAIL("needs root to mount a 1 MiB tmpfs (the simulated full disk is tested "
                    "in tiers_tests)");
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
      Strata({"run", "-m", model_, "-p", "x", "--ram-budget", "3M", "-c", "64", "--io-depth", "100000"});
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("--io-depth must be between 1 and 4096"), std::string::npos) << r.out;
  r = Strata({"run", "-m", model_, "-p", "x", "--ram-budget", "100K"});
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("below the floor"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("smallest budget that works"), std::string::npos) << r.out;
}

}  // namespace

namespace {

// The budget is a ceiling for the whole process: at the floor of the small preset (the
// real 129k-token vocabulary), with -c 512, inside a memory cgroup of the budget plus
// 64 MiB, the run is not killed and its peak RSS stays within that.
TEST_F(ResourceLimits, InAMemoryCgroupOfTheBudgetPlus64MiBTheRunFits) {
  const std::string small = Path("small.gguf");
  ASSERT_EQ(Strata({"make-model", "--preset", "small", "-o", small}).code, 0);
  const CliResult plan = Strata({"plan", "-m", small, "--no-drive", "--json", "-c", "512"});
  ASSERT_EQ(plan.code, 0) << plan.out;
  const uint64_t floor = JsonNumber(plan.out, "min_budget_bytes");
  ASSERT_GT(floor, 0u) << plan.out;
  constexpr uint64_t kSlack = 64ull << 20;
  MemoryCgroup cg(floor + kSlack);
  if (!cg.ok()) STRATA_SKIP_OR_FAIL("cannot create a memory cgroup (needs root)");
  const CliResult r = Strata({"run", "-m", small, "-p", "Once upon a time", "-n", "48", "-c",
                              "512", "--ram-budget", std::to_string(floor), "--no-profile"},
                             false, cg.procs());
  ASSERT_EQ(r.code, 0) << r.out;
  const double rss = PeakRss(r.out);
  ASSERT_GT(rss, 0) << r.out;
  EXPECT_LE(rss, static_cast<double>(floor + kSlack))
      << "peak RSS " << rss / (1 << 20) << " MiB, budget " << floor / (1 << 20) << " MiB";
}

// No --ram-budget, in a cgroup too small for the whole model: strata says it runs
// tiered at a budget from the cgroup's limit, and the output is the all-in-RAM one.
TEST_F(ResourceLimits, WithoutABudgetAModelLargerThanItsCgroupRunsTiered) {
  const std::string small = Path("small.gguf");
  ASSERT_EQ(Strata({"make-model", "--preset", "small", "-o", small}).code, 0);
  const CliResult plan =
      Strata({"plan", "-m", small, "--no-drive", "--json", "-c", "512", "--ram-budget",
              "unlimited"});
  ASSERT_EQ(plan.code, 0) << plan.out;
  const uint64_t floor = JsonNumber(plan.out, "min_budget_bytes");
  const uint64_t everything = JsonNumber(plan.out, "resident_bytes");
  ASSERT_GT(everything, floor) << plan.out;
  // A limit whose 85% lies between the floor and the whole model.
  const auto limit = static_cast<uint64_t>(static_cast<double>(floor + everything) / 2 / 0.85);
  const std::vector<std::string> run = {"run", "-m", small, "-p", "Once upon a time", "-n", "16",
                                        "-c", "512", "--temp", "0", "--no-profile",
                                        "--logits-out"};
  std::vector<std::string> a = run, b = run;
  a.push_back(Path("all.bin"));
  b.push_back(Path("tiered.bin"));
  ASSERT_EQ(Strata(a).code, 0);
  MemoryCgroup cg(limit);
  if (!cg.ok()) STRATA_SKIP_OR_FAIL("cannot create a memory cgroup (needs root)");
  const CliResult r = Strata(b, false, cg.procs());
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("the memory cgroup limit"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("running tiered at --ram-budget"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("tiers: tiered"), std::string::npos) << r.out;
  EXPECT_EQ(ReadAll(Path("all.bin")), ReadAll(Path("tiered.bin")));
}

}  // namespace

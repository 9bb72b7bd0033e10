// The strata binary as a user meets it: help on every subcommand, one-line errors with
// a non-zero exit, STRATA_<OPTION> environment variables, inspect's JSON, and Ctrl-C
// during make-model leaving no file.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

namespace {

struct CliRun {
  int exit_code;
  std::string out;  // stdout and stderr together
};

CliRun Strata(const std::string& args, const std::string& env = "") {
  const std::string cmd = env + " " + STRATA_BINARY + " " + args + " 2>&1";
  FILE* pipe = popen(cmd.c_str(), "r");
  std::string out;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), pipe)) > 0) out.append(buf.data(), n);
  const int status = pclose(pipe);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status), out};
}

class Cli : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("strata-cli-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string Path(const std::string& name) const { return (dir_ / name).string(); }
  std::filesystem::path dir_;
};

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

TEST_F(Cli, HelpForEverySubcommand) {
  CliRun top = Strata("--help");
  EXPECT_EQ(top.exit_code, 0);
  EXPECT_NE(top.out.find("make-model"), std::string::npos);
  EXPECT_NE(top.out.find("inspect"), std::string::npos);
  for (const char* sub : {"make-model", "inspect"}) {
    CliRun r = Strata(std::string(sub) + " --help");
    EXPECT_EQ(r.exit_code, 0) << sub;
    EXPECT_NE(r.out.find("STRATA_"), std::string::npos) << sub << ": env vars not shown";
  }
}

TEST_F(Cli, BadInputIsOneLineAndNonZero) {
  CliRun missing = Strata("inspect " + Path("nope.gguf"));
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_EQ(missing.out, "strata: not found: " + Path("nope.gguf") + ": no such file\n");

  CliRun flag = Strata("make-model --preset tiny -o " + Path("x.gguf") + " --bogus");
  EXPECT_NE(flag.exit_code, 0);
  EXPECT_NE(flag.out.find("--bogus"), std::string::npos);

  CliRun type = Strata("make-model --type Q9_9 -o " + Path("x.gguf"));
  EXPECT_EQ(type.exit_code, 1);
  EXPECT_NE(type.out.find("--type"), std::string::npos);
  EXPECT_FALSE(std::filesystem::exists(Path("x.gguf")));

  // A truncated model: the error names the file.
  ASSERT_EQ(Strata("make-model --preset tiny -o " + Path("t.gguf")).exit_code, 0);
  std::filesystem::resize_file(Path("t.gguf"), 5000);
  CliRun trunc = Strata("inspect " + Path("t.gguf"));
  EXPECT_EQ(trunc.exit_code, 1);
  EXPECT_NE(trunc.out.find(Path("t.gguf")), std::string::npos);
  EXPECT_NE(trunc.out.find("strata: corrupt: "), std::string::npos);
  EXPECT_EQ(std::count(trunc.out.begin(), trunc.out.end(), '\n'), 1);
}

TEST_F(Cli, EnvironmentVariablesSetOptions) {
  ASSERT_EQ(Strata("make-model --preset tiny --seed 7 -o " + Path("flag.gguf")).exit_code, 0);
  ASSERT_EQ(Strata("make-model --preset tiny -o " + Path("env.gguf"), "STRATA_SEED=7").exit_code,
            0);
  ASSERT_EQ(Strata("make-model --preset tiny -o " + Path("default.gguf")).exit_code, 0);
  EXPECT_EQ(ReadAll(Path("flag.gguf")), ReadAll(Path("env.gguf")));
  EXPECT_NE(ReadAll(Path("flag.gguf")), ReadAll(Path("default.gguf")));
  // The command line wins over the environment.
  ASSERT_EQ(Strata("make-model --preset tiny --seed 42 -o " + Path("both.gguf"), "STRATA_SEED=7")
                .exit_code,
            0);
  EXPECT_EQ(ReadAll(Path("both.gguf")), ReadAll(Path("default.gguf")));
}

TEST_F(Cli, InspectJsonIsMachineReadable) {
  ASSERT_EQ(Strata("make-model --preset tiny -o " + Path("m.gguf")).exit_code, 0);
  CliRun r = Strata("inspect --json " + Path("m.gguf"));
  ASSERT_EQ(r.exit_code, 0) << r.out;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["architecture"], "deepseek2");
  EXPECT_TRUE(j["verdict"]["runnable"].get<bool>());
  EXPECT_EQ(j["hyperparameters"]["n_layer"], 3);
  EXPECT_EQ(j["moe_layers"], 2);
  EXPECT_GT(j["active_bytes_per_token"].get<uint64_t>(), 0u);
  EXPECT_LT(j["active_bytes_per_token"].get<uint64_t>(), j["total_bytes"].get<uint64_t>());
  EXPECT_EQ(j["tensors"].size(), 52u);
  EXPECT_EQ(j["totals"]["routed experts"]["tensors"], 6);
}

TEST_F(Cli, InterruptLeavesNoOutput) {
  const std::string out = Path("interrupted.gguf");
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    execl(STRATA_BINARY, STRATA_BINARY, "make-model", "--preset", "small", "--tokenizer", "none",
          "-t", "1", "-o", out.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  // Wait until writing has started, then press Ctrl-C.
  for (int i = 0; i < 200 && !std::filesystem::exists(out + ".tmp"); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  kill(pid, SIGINT);
  int status = 0;
  waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 130);
  EXPECT_FALSE(std::filesystem::exists(out));
  EXPECT_FALSE(std::filesystem::exists(out + ".tmp"));
}

}  // namespace

namespace {

TEST_F(Cli, RunIsDeterministicAndWritesLogits) {
  ASSERT_EQ(Strata("make-model --preset tiny -o " + Path("m.gguf")).exit_code, 0);
  const std::string args = "run -m " + Path("m.gguf") + " -p Hello -n 12 --temp 0";
  CliRun a = Strata(args + " -t 2 --logits-out " + Path("logits.bin"));
  CliRun b = Strata(args + " -t 1");
  ASSERT_EQ(a.exit_code, 0) << a.out;
  ASSERT_EQ(b.exit_code, 0) << b.out;
  auto text = [](const std::string& out) { return out.substr(0, out.find("strata run:")); };
  EXPECT_EQ(text(a.out), text(b.out)) << "same output for any thread count";
  EXPECT_NE(a.out.find("generated 12 tok"), std::string::npos) << a.out;
  EXPECT_NE(a.out.find("peak RSS"), std::string::npos);
  // 16-byte header then 12 rows of 262 floats.
  const std::string logits = ReadAll(Path("logits.bin"));
  ASSERT_EQ(logits.size(), 16u + 12u * 262u * 4u);
  EXPECT_EQ(logits.substr(0, 4), "STRL");
}

TEST_F(Cli, RunRejectsBadInputWithOneLine) {
  ASSERT_EQ(Strata("make-model --preset tiny -o " + Path("m.gguf")).exit_code, 0);
  CliRun long_prompt = Strata("run -m " + Path("m.gguf") + " -c 4 -p 'far too long a prompt'");
  EXPECT_EQ(long_prompt.exit_code, 1);
  EXPECT_NE(long_prompt.out.find("--ctx-size"), std::string::npos) << long_prompt.out;
  CliRun not_model = Strata("run -m " + Path("nope.gguf") + " -p x");
  EXPECT_EQ(not_model.exit_code, 1);
  EXPECT_NE(not_model.out.find("nope.gguf"), std::string::npos);
  std::filesystem::resize_file(Path("m.gguf"), 100000);
  CliRun truncated = Strata("run -m " + Path("m.gguf") + " -p x");
  EXPECT_EQ(truncated.exit_code, 1);
  EXPECT_NE(truncated.out.find("m.gguf"), std::string::npos) << truncated.out;
}

TEST_F(Cli, TokenizePrintsIds) {
  ASSERT_EQ(Strata("make-model --preset tiny -o " + Path("m.gguf")).exit_code, 0);
  CliRun r = Strata("tokenize -m " + Path("m.gguf") + " -p Hi --ids");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_EQ(r.out, "[256, 72, 105]\n");  // BOS, 'H', 'i' in the byte vocabulary
}

}  // namespace

namespace {

TEST_F(Cli, BenchReportsSpeedsAndBounds) {
  ASSERT_EQ(Strata("make-model --preset tiny -o " + Path("m.gguf")).exit_code, 0);
  CliRun r = Strata("bench -m " + Path("m.gguf") + " -p 16 -n 8 -r 2 -t 2 --json");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["threads"], 2);
  EXPECT_GT(j["prefill"]["tok_per_s"].get<double>(), 0);
  EXPECT_EQ(j["decode"]["runs"].size(), 2u);
  EXPECT_GT(j["decode_bound"]["tok_per_s"].get<double>(), 0);
  EXPECT_GT(j["ram_read_bytes_per_s"].get<double>(), 1e8);
  EXPECT_TRUE(j["kernel_bytes_per_s"].contains("q8_0"));
  EXPECT_GT(j["peak_rss_bytes"].get<uint64_t>(), 0u);
}

}  // namespace

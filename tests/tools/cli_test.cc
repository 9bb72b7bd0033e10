// The strata binary as a user meets it: help on every subcommand, one-line errors with
// a non-zero exit, STRATA_<OPTION> environment variables, inspect's JSON, and Ctrl-C
// during make-model leaving no file.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
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

// The smallest budget `plan` reports for a model (its floor), in bytes.
// The floor for the session a command will open: plan's defaults are run's (-c 4096
// -b 512); bench -p P -n N holds P + N + 8 tokens (`session` gives plan those flags).
uint64_t FloorOf(const std::string& model, const std::string& session = "") {
  CliRun r = Strata("plan -m " + model + " --no-drive --json" + session);
  EXPECT_EQ(r.exit_code, 0) << r.out;
  return nlohmann::json::parse(r.out)["min_budget_bytes"].get<uint64_t>();
}

TEST_F(Cli, BenchReportsEveryTierMetricPerBudget) {
  ASSERT_EQ(Strata("make-model --preset tiny -o " + Path("m.gguf")).exit_code, 0);
  const uint64_t floor = FloorOf(Path("m.gguf"), " -c 32 -t 2");
  CliRun r = Strata("bench -m " + Path("m.gguf") + " -p 16 -n 8 -r 2 -t 2 --json --sweep " +
                    std::to_string(floor) + ",unlimited");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["threads"], 2);
  EXPECT_GT(j["machine"]["ram_read_bytes_per_s"].get<double>(), 1e8);
  EXPECT_GT(j["machine"]["drive_sequential_bytes_per_s"].get<double>(), 1e6);
  EXPECT_TRUE(j["machine"]["kernel_bytes_per_s"].contains("q8_0"));
  ASSERT_EQ(j["budgets"].size(), 2u);
  const auto& tight = j["budgets"][0];
  const auto& all = j["budgets"][1];
  EXPECT_EQ(tight["mode"], "tiered");
  EXPECT_EQ(all["mode"], "all-in-RAM");
  for (const auto& b : {tight, all}) {
    EXPECT_GT(b["prefill_tok_per_s"].get<double>(), 0);
    EXPECT_GT(b["decode_tok_per_s"].get<double>(), 0);
    EXPECT_GT(b["time_to_first_token_ms"].get<double>(), 0);
    EXPECT_EQ(b["runs"].size(), 2u);
    EXPECT_GT(b["bound"]["tok_per_s"].get<double>(), 0);
    EXPECT_GT(b["peak_rss_bytes"].get<uint64_t>(), 0u);
    for (const char* rate : {"expert_hit_rate", "belady_hit_rate", "prefetch_recall"}) {
      EXPECT_GE(b[rate].get<double>(), 0.0) << rate;
      EXPECT_LE(b[rate].get<double>(), 1.0) << rate;
    }
  }
  EXPECT_GT(tight["disk_mib_per_token"].get<double>(), 0) << "the floor forces reads";
  EXPECT_EQ(all["disk_mib_per_token"].get<double>(), 0);
  EXPECT_EQ(all["expert_hit_rate"].get<double>(), 1.0);
  EXPECT_GT(tight["resident_bytes"]["expert_cache"].get<uint64_t>(), 0u);
  EXPECT_LE(tight["resident_bytes"]["pinned_dense"].get<uint64_t>() +
                tight["resident_bytes"]["expert_cache"].get<uint64_t>(),
            floor);
}

TEST_F(Cli, BenchInterleavedPairsEachRepetitionWithTheFirstRow) {
  ASSERT_EQ(Strata("make-model --preset tiny -o " + Path("m.gguf")).exit_code, 0);
  const std::string bench = "bench -m " + Path("m.gguf") + " -p 16 -n 8 -r 3 -t 2 --sweep unlimited," +
                            std::to_string(FloorOf(Path("m.gguf"), " -c 32 -t 2")) + " --interleave";
  CliRun r = Strata(bench + " --json");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_TRUE(j["interleaved"].get<bool>());
  ASSERT_EQ(j["budgets"].size(), 2u);
  EXPECT_FALSE(j["budgets"][0].contains("paired_ratio_to_first"));
  const auto& runs0 = j["budgets"][0]["runs"];
  const auto& runs1 = j["budgets"][1]["runs"];
  ASSERT_EQ(runs0.size(), 3u);
  ASSERT_EQ(runs1.size(), 3u);
  // The ratio is the median of the per-repetition ratios, not a ratio of medians.
  std::vector<double> ratios;
  for (size_t k = 0; k < 3; ++k) {
    ratios.push_back(runs1[k]["tg"].get<double>() / runs0[k]["tg"].get<double>());
  }
  std::sort(ratios.begin(), ratios.end());
  const auto& paired = j["budgets"][1]["paired_ratio_to_first"];
  EXPECT_DOUBLE_EQ(paired["decode"].get<double>(), ratios[1]);
  EXPECT_DOUBLE_EQ(paired["decode_low"].get<double>(), ratios[0]);
  EXPECT_DOUBLE_EQ(paired["decode_high"].get<double>(), ratios[2]);
  EXPECT_GT(paired["prefill"].get<double>(), 0);

  CliRun table = Strata(bench);
  ASSERT_EQ(table.exit_code, 0) << table.out;
  EXPECT_NE(table.out.find("3 repetitions, medians, interleaved"), std::string::npos) << table.out;
  EXPECT_NE(table.out.find("interleaved: each row against [unlimited]"), std::string::npos)
      << table.out;
  CliRun alone = Strata("bench -m " + Path("m.gguf") + " -p 4 -n 4 --interleave");
  EXPECT_EQ(alone.exit_code, 1);
  EXPECT_NE(alone.out.find("--interleave: needs --sweep"), std::string::npos) << alone.out;
}

TEST_F(Cli, ABudgetBelowTheFloorIsRefusedWithTheMinimumWhichThenWorks) {
  ASSERT_EQ(Strata("make-model --preset tiny -o " + Path("m.gguf")).exit_code, 0);
  const uint64_t floor = FloorOf(Path("m.gguf"));
  const std::string run = "run -m " + Path("m.gguf") + " -p Hello -n 4 --temp 0 --ram-budget ";
  CliRun below = Strata(run + std::to_string(floor - 1));
  EXPECT_EQ(below.exit_code, 1);
  EXPECT_NE(below.out.find("smallest budget that works is"), std::string::npos) << below.out;
  EXPECT_NE(below.out.find("(" + std::to_string(floor) + " bytes)"), std::string::npos)
      << below.out;
  EXPECT_EQ(std::count(below.out.begin(), below.out.end(), '\n'), 1) << below.out;
  CliRun at = Strata(run + std::to_string(floor));
  EXPECT_EQ(at.exit_code, 0) << at.out;
  EXPECT_NE(at.out.find("tiers: tiered, budget"), std::string::npos) << at.out;
  EXPECT_NE(at.out.find("MiB read/token"), std::string::npos) << at.out;
}

TEST_F(Cli, AutoBudgetSaysWhatItChose) {
  ASSERT_EQ(Strata("make-model --preset tiny -o " + Path("m.gguf")).exit_code, 0);
  CliRun r = Strata("run -m " + Path("m.gguf") + " -p Hello -n 2 --ram-budget auto --no-profile");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("--ram-budget auto: 85% of MemAvailable"), std::string::npos) << r.out;
}

TEST_F(Cli, ADriveThatNeverRecoversEndsTheRunWithOneErrorLine) {
  // EIO forever through both readers, io_uring's EAGAIN storm and a ring whose submits
  // always fail: the run ends, non-zero, its last line the error naming the file.
  ASSERT_EQ(Strata("make-model --preset tiny -o " + Path("m.gguf")).exit_code, 0);
  for (const char* faults :
       {"--io fault --faults eio=1", "--io uring-fault --faults eio=1",
        "--io uring-fault --faults eagain=1", "--io uring-fault --faults submit-fail=1"}) {
    const auto start = std::chrono::steady_clock::now();
    CliRun r = Strata("run -m " + Path("m.gguf") + " -p 'Hello there' -n 4 -c 64 -b 16 " +
                      "--ram-budget 3M --no-profile " + faults);
    EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(60)) << faults;
    EXPECT_EQ(r.exit_code, 1) << faults << ": " << r.out;
    const size_t last = r.out.rfind("strata: I/O error: ");
    ASSERT_NE(last, std::string::npos) << faults << ": " << r.out;
    EXPECT_NE(r.out.find(Path("m.gguf"), last), std::string::npos) << r.out;
    EXPECT_EQ(r.out.find('\n', last), r.out.size() - 1) << "the error is the last line";
  }
}

TEST_F(Cli, BadTierFlagsNameTheFlag) {
  ASSERT_EQ(Strata("make-model --preset tiny -o " + Path("m.gguf")).exit_code, 0);
  const std::string run = "run -m " + Path("m.gguf") + " -p Hello -n 2 ";
  for (const auto& [args, flag] : std::vector<std::pair<std::string, std::string>>{
           {"--io floppy", "--io"},
           {"--prefetch maybe", "--prefetch"},
           {"--ram-budget 12Q", "--ram-budget"},
           {"--cache-policy mru", "--cache-policy"},
           {"--faults eio=3", "--faults"},
           {"--expert-cache 1M", "--expert-cache"},
           {"--io-depth 0", "--io-depth"},
           {"--ram-budget 4M -c 64 -b 16 --expert-cache 3M", "--expert-cache"},
           {"--profile /nonexistent-dir/p.heat", "--profile"}}) {
    CliRun r = Strata(run + args);
    EXPECT_EQ(r.exit_code, 1) << args << ": " << r.out;
    EXPECT_NE(r.out.find(flag), std::string::npos) << args << ": " << r.out;
  }
}

TEST_F(Cli, PeakRssStaysWithinBudgetPlus64MiB) {
  // The budget holds the KV cache and scratch too; what is left outside it is the
  // tokenizer of the small preset's real 129k-token vocabulary, the parsed metadata,
  // code and thread stacks. (resource_limits_test runs the same inside a memory cgroup.)
  constexpr uint64_t kOverhead = 64ull << 20;
  ASSERT_EQ(Strata("make-model --preset small -o " + Path("s.gguf")).exit_code, 0);
  const uint64_t budget = FloorOf(Path("s.gguf"), " -c 512") + (8ull << 20);
  CliRun r = Strata("run -m " + Path("s.gguf") + " -p 'Once upon a time' -n 48 -c 512 --ram-budget " +
                    std::to_string(budget));
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const size_t at = r.out.find("peak RSS ");
  ASSERT_NE(at, std::string::npos) << r.out;
  const double value = std::stod(r.out.substr(at + 9));
  const std::string unit = r.out.substr(r.out.find(' ', at + 9) + 1, 3);
  const double rss = value * (unit == "GiB" ? 1 << 30 : unit == "MiB" ? 1 << 20 : 1 << 10);
  EXPECT_LE(rss, static_cast<double>(budget + kOverhead))
      << "peak RSS " << rss / (1 << 20) << " MiB, budget " << budget / (1 << 20) << " MiB";
}

TEST_F(Cli, PlanAndInspectProfileAfterARun) {
  ASSERT_EQ(Strata("make-model --preset tiny -o " + Path("m.gguf")).exit_code, 0);
  CliRun plan = Strata("plan -m " + Path("m.gguf") + " --ram-budget 3M -c 64 -b 16 --budgets 5M,1G");
  ASSERT_EQ(plan.exit_code, 0) << plan.out;
  EXPECT_NE(plan.out.find("floor"), std::string::npos);
  EXPECT_NE(plan.out.find("drive: sequential"), std::string::npos) << plan.out;
  EXPECT_NE(plan.out.find("all-in-RAM"), std::string::npos) << "1G holds the whole model";
  EXPECT_NE(plan.out.find("uniform routing"), std::string::npos);
  CliRun none = Strata("inspect --profile " + Path("m.gguf"));
  EXPECT_EQ(none.exit_code, 1);
  EXPECT_NE(none.out.find("no heat profile"), std::string::npos) << none.out;
  ASSERT_EQ(Strata("run -m " + Path("m.gguf") + " -p Hello -n 8 --ram-budget 3M -c 64 -b 16").exit_code, 0);
  CliRun shown = Strata("inspect --profile " + Path("m.gguf"));
  ASSERT_EQ(shown.exit_code, 0) << shown.out;
  EXPECT_NE(shown.out.find("1 runs"), std::string::npos) << shown.out;
  CliRun with_heat = Strata("plan -m " + Path("m.gguf") + " --ram-budget 3M -c 64 -b 16 --no-drive");
  EXPECT_NE(with_heat.out.find("heat profile"), std::string::npos) << with_heat.out;
}

}  // namespace

namespace {

TEST_F(Cli, PackThenRunGivesTheSameLogitsAndInspectShowsTheCodecs) {
  ASSERT_EQ(Strata("make-model --preset tiny -o " + Path("m.gguf")).exit_code, 0);
  CliRun pack = Strata("pack " + Path("m.gguf") + " " + Path("p.gguf") + " --codec zstd:3 -t 2");
  ASSERT_EQ(pack.exit_code, 0) << pack.out;
  EXPECT_NE(pack.out.find("q8_0"), std::string::npos) << pack.out;
  EXPECT_NE(pack.out.find("verify"), std::string::npos) << pack.out;
  const std::string run = " -p Hello -n 12 --temp 0 --logits-out ";
  ASSERT_EQ(Strata("run -m " + Path("m.gguf") + run + Path("a.bin")).exit_code, 0);
  CliRun tiered = Strata("run -m " + Path("p.gguf") + " --ram-budget 4M -c 64 -b 16" + run + Path("b.bin"));
  ASSERT_EQ(tiered.exit_code, 0) << tiered.out;
  EXPECT_NE(tiered.out.find("tiers: tiered"), std::string::npos) << tiered.out;
  EXPECT_EQ(ReadAll(Path("a.bin")), ReadAll(Path("b.bin")));
  ASSERT_EQ(Strata("run -m " + Path("p.gguf") + " --no-verify" + run + Path("c.bin")).exit_code, 0);
  EXPECT_EQ(ReadAll(Path("a.bin")), ReadAll(Path("c.bin")));

  CliRun inspect = Strata("inspect --no-tensors " + Path("p.gguf"));
  ASSERT_EQ(inspect.exit_code, 0) << inspect.out;
  EXPECT_NE(inspect.out.find("packed by strata pack (format v1, from m.gguf)"), std::string::npos)
      << inspect.out;
  EXPECT_NE(inspect.out.find("zstd:3"), std::string::npos);
  auto json = nlohmann::json::parse(Strata("inspect --json " + Path("p.gguf")).out);
  EXPECT_EQ(json["pack"]["classes"]["q8_0"]["codec"], "zstd:3");
  EXPECT_GT(json["pack"]["classes"]["q8_0"]["bundles"].get<int>(), 0);

  // The packed file works with every command that reads a model.
  CliRun bench = Strata("bench -m " + Path("p.gguf") + " -p 8 -n 4 -r 1 --ram-budget 4M");
  EXPECT_EQ(bench.exit_code, 0) << bench.out;
  EXPECT_NE(bench.out.find("tiered"), std::string::npos) << bench.out;
  CliRun plan = Strata("plan -m " + Path("p.gguf") + " --ram-budget 4M -c 64 -b 16 --no-drive");
  EXPECT_EQ(plan.exit_code, 0) << plan.out;

  CliRun autopick = Strata("pack " + Path("m.gguf") + " " + Path("q.gguf") + " --drive-speed 2G");
  ASSERT_EQ(autopick.exit_code, 0) << autopick.out;
  EXPECT_NE(autopick.out.find("codec auto: drive 2.15 GB/s (--drive-speed)"), std::string::npos)
      << autopick.out;
  EXPECT_NE(autopick.out.find("-> q8_0:"), std::string::npos) << autopick.out;
}

TEST_F(Cli, SplitSetRunsAsTheSingleFileWithEveryCommand) {
  // make-model writes llama.cpp's gguf-split layout; any shard opens the set, and the
  // logits are the single file's bit for bit: all in RAM, tiered (uring and pread, reads
  // sent to the right shard), mapped, and after pack.
  ASSERT_EQ(Strata("make-model --preset tiny -o " + Path("one.gguf")).exit_code, 0);
  // Shards of about 1.5 MiB: large enough for bench's and pack's drive probe.
  CliRun make = Strata("make-model --preset tiny --split-max-size 1536K -o " + Path("s.gguf"));
  ASSERT_EQ(make.exit_code, 0) << make.out;
  EXPECT_NE(make.out.find("+3 shards: a split set"), std::string::npos) << make.out;
  const std::string first = Path("s-00001-of-00004.gguf"), third = Path("s-00003-of-00004.gguf");
  const std::string run = " -p Hello -n 12 --temp 0 --logits-out ";
  ASSERT_EQ(Strata("run -m " + Path("one.gguf") + run + Path("a.bin")).exit_code, 0);
  const std::string reference = ReadAll(Path("a.bin"));
  int k = 0;
  for (const std::string& flags : {std::string(""), std::string(" --ram-budget 3M -c 64 -b 16"),
                                   std::string(" --ram-budget 3M -c 64 -b 16 --io pread"), std::string(" --io mmap")}) {
    const std::string out = Path("b" + std::to_string(k++) + ".bin");
    CliRun r = Strata("run -m " + third + flags + run + out);
    ASSERT_EQ(r.exit_code, 0) << flags << ": " << r.out;
    EXPECT_EQ(ReadAll(out), reference) << flags;
  }
  // The tiered runs above, through the third shard, kept one heat profile for the set:
  // beside its first shard, where naming any shard finds it.
  EXPECT_TRUE(std::filesystem::exists(first + ".strata-heat"));
  EXPECT_EQ(Strata("inspect --profile " + Path("s-00002-of-00004.gguf")).exit_code, 0);
  CliRun inspect = Strata("inspect --no-tensors " + third);
  ASSERT_EQ(inspect.exit_code, 0) << inspect.out;
  EXPECT_NE(inspect.out.find("split set of 4 shards"), std::string::npos) << inspect.out;
  EXPECT_NE(inspect.out.find(Path("s-00004-of-00004.gguf")), std::string::npos) << inspect.out;
  EXPECT_EQ(nlohmann::json::parse(Strata("inspect --json " + first).out)["shards"].size(), 4u);
  EXPECT_EQ(Strata("bench -m " + first + " -p 8 -n 4 -r 1 --ram-budget 3M").exit_code, 0);
  EXPECT_EQ(Strata("plan -m " + first + " --ram-budget 3M -c 64 -b 16 --no-drive").exit_code, 0);
  EXPECT_EQ(Strata("tokenize -m " + first + " -p Hello").exit_code, 0);
  CliRun pack = Strata("pack " + first + " " + Path("p.gguf"));
  ASSERT_EQ(pack.exit_code, 0) << pack.out;
  ASSERT_EQ(Strata("run -m " + Path("p.gguf") + " --ram-budget 4M -c 64 -b 16" + run + Path("c.bin")).exit_code, 0);
  EXPECT_EQ(ReadAll(Path("c.bin")), reference);

  // A missing shard: one line naming it, non-zero.
  std::filesystem::remove(Path("s-00002-of-00004.gguf"));
  CliRun missing = Strata("run -m " + first + " -p Hello -n 1");
  EXPECT_NE(missing.exit_code, 0);
  EXPECT_NE(missing.out.find(Path("s-00002-of-00004.gguf") + ": missing shard 2 of 4"), std::string::npos)
      << missing.out;
}

TEST_F(Cli, MixedTypeLayersGetSlotsOfTheirOwnSizeAndTheSameLogits) {
  // ud-iq1_s mixes expert types by layer (IQ2_XXS on the first and last MoE layers, IQ1_M
  // on every fourth, IQ1_S elsewhere) and within one (gate/up vs down). At these shapes the
  // IQ1_S and IQ1_M bundles round up to the same 4 KiB-aligned slot: two slot sizes.
  CliRun make = Strata("make-model --preset tiny --layers 6 --experts 32 --recipe ud-iq1_s -o " + Path("m.gguf"));
  ASSERT_EQ(make.exit_code, 0) << make.out;
  CliRun inspect = Strata("inspect " + Path("m.gguf"));
  EXPECT_NE(inspect.out.find("blk.2.ffn_gate_exps.weight           iq1_s"), std::string::npos) << inspect.out;
  EXPECT_NE(inspect.out.find("blk.4.ffn_up_exps.weight             iq1_m"), std::string::npos) << inspect.out;
  EXPECT_NE(inspect.out.find("blk.5.ffn_gate_exps.weight           iq2_xxs"), std::string::npos) << inspect.out;
  const uint64_t floor = FloorOf(Path("m.gguf"), " -c 64 -b 16");
  auto plan = nlohmann::json::parse(Strata("plan --json -m " + Path("m.gguf") +
                                           " --no-drive -c 64 -b 16 --ram-budget " +
                                           std::to_string(floor))
                                        .out);
  ASSERT_EQ(plan["slot_classes"].size(), 2u) << plan.dump();
  uint64_t sized = 0;
  for (const auto& c : plan["slot_classes"]) sized += c["slot_bytes"].get<uint64_t>() * c["layers"].get<uint64_t>();
  const uint64_t at_largest = plan["slot_bytes"].get<uint64_t>() * 5;
  EXPECT_LT(sized, at_largest);  // the floor pays for each layer's own slots
  const std::string run = " -p Hello -n 12 --temp 0 --logits-out ";
  ASSERT_EQ(Strata("run -m " + Path("m.gguf") + run + Path("a.bin")).exit_code, 0);
  for (const std::string& budget : {std::to_string(floor), std::to_string(floor + floor / 4)}) {
    CliRun r = Strata("run -m " + Path("m.gguf") + " -c 64 -b 16 --ram-budget " + budget + run +
                      Path("b.bin"));
    ASSERT_EQ(r.exit_code, 0) << r.out;
    EXPECT_NE(r.out.find("tiers: tiered"), std::string::npos) << r.out;
    EXPECT_EQ(ReadAll(Path("a.bin")), ReadAll(Path("b.bin"))) << budget;
  }
}

TEST_F(Cli, PackRefusesBadRequestsWithOneLine) {
  ASSERT_EQ(Strata("make-model --preset tiny -o " + Path("m.gguf")).exit_code, 0);
  ASSERT_EQ(Strata("pack " + Path("m.gguf") + " " + Path("p.gguf") + " --codec none").exit_code, 0);
  const struct {
    std::string args, want;
  } cases[] = {
      {"pack " + Path("m.gguf") + " " + Path("x.gguf") + " --codec brotli", "--codec 'brotli'"},
      {"pack " + Path("m.gguf") + " " + Path("m.gguf"), "is the input file"},
      {"pack " + Path("p.gguf") + " " + Path("x.gguf"), "already packed"},
      {"pack " + Path("nope.gguf") + " " + Path("x.gguf") + " --codec none", "nope.gguf"},
      {"run -m " + Path("p.gguf") + " -p x --io mmap --ram-budget 3M", "--io mmap"},
  };
  for (const auto& c : cases) {
    CliRun r = Strata(c.args);
    EXPECT_EQ(r.exit_code, 1) << c.args << "\n" << r.out;
    EXPECT_NE(r.out.find(c.want), std::string::npos) << c.args << "\n" << r.out;
    EXPECT_LE(std::count(r.out.begin(), r.out.end(), '\n'), 1) << r.out;
  }
  EXPECT_FALSE(std::filesystem::exists(Path("x.gguf")));
}

TEST_F(Cli, EngramModelFromDiskGivesTheSameLogitsAndReportsItsRowCache) {
  ASSERT_EQ(Strata("make-model --preset engram-tiny -o " + Path("e.gguf")).exit_code, 0);
  const std::string args = "run -m " + Path("e.gguf") + " -p 'the cat and the cat' -n 8 --temp 0";
  CliRun ram = Strata(args + " --logits-out " + Path("ram.bin"));
  ASSERT_EQ(ram.exit_code, 0) << ram.out;
  CliRun disk = Strata(args + " --ram-budget 9M -c 64 -b 16 --engram-cache 16K --no-profile --logits-out " +
                       Path("disk.bin"));
  ASSERT_EQ(disk.exit_code, 0) << disk.out;
  EXPECT_EQ(ReadAll(Path("ram.bin")), ReadAll(Path("disk.bin")));
  EXPECT_NE(disk.out.find("engram cache 16.0 KiB: hit"), std::string::npos) << disk.out;
  // bench on real text (teacher forcing) prints the row cache's numbers per budget.
  std::ofstream(Path("text.txt")) << "the cat sat on the mat and the cat sat on the hat. " << 
      "the dog sat on the log and the dog sat on the cat.\n";
  CliRun bench = Strata("bench -m " + Path("e.gguf") + " -p 12 -n 8 -r 1 --ram-budget 11M " +
                        "--engram-cache 64K --text " + Path("text.txt"));
  ASSERT_EQ(bench.exit_code, 0) << bench.out;
  EXPECT_NE(bench.out.find("engram per token: [11.0 MiB] row cache 64.0 KiB: hit"),
            std::string::npos)
      << bench.out;
  // --lockstep --cold: every repetition starts from an empty row cache (cleared, as the
  // experts are pinned), so each reads the same rows; warm ones read none.
  const std::string lockstep = "bench -m " + Path("e.gguf") +
                               " -p 12 -n 8 -r 3 --sweep unlimited,11M --lockstep --engram-cache "
                               "1M --pin 'blk.*.ffn_*_exps.weight' --json --text " +
                               Path("text.txt");
  for (const bool cold : {true, false}) {
    CliRun r = Strata(lockstep + (cold ? " --cold" : ""));
    ASSERT_EQ(r.exit_code, 0) << r.out;
    const auto j = nlohmann::json::parse(r.out);
    EXPECT_TRUE(j["lockstep"].get<bool>());
    EXPECT_TRUE(j["interleaved"].get<bool>());
    ASSERT_EQ(j["budgets"].size(), 2u);
    EXPECT_GT(j["budgets"][1]["paired_ratio_to_first"]["decode"].get<double>(), 0);
    const auto& runs = j["budgets"][1]["runs"];
    ASSERT_EQ(runs.size(), 3u);
    const double first = runs[0]["engram_rows_read_per_token"].get<double>();
    if (cold) {
      EXPECT_GT(first, 0);
    }
    for (const auto& run : runs) {
      EXPECT_EQ(run["engram_rows_read_per_token"].get<double>(), cold ? first : 0.0) << r.out;
    }
    for (const auto& run : j["budgets"][0]["runs"]) {
      EXPECT_EQ(run["engram_rows_read_per_token"].get<double>(), 0.0) << "tables in RAM";
    }
  }
  CliRun alone = Strata("bench -m " + Path("e.gguf") + " -p 4 -n 4 --lockstep");
  EXPECT_EQ(alone.exit_code, 1);
  EXPECT_NE(alone.out.find("--lockstep: needs --sweep"), std::string::npos) << alone.out;
  CliRun inspect = Strata("inspect " + Path("e.gguf"));
  EXPECT_EQ(inspect.exit_code, 0) << inspect.out;
  EXPECT_NE(inspect.out.find("engram"), std::string::npos);
  // plan says where the tables go at each budget and counts the row cache it is given.
  CliRun plan = Strata("plan -m " + Path("e.gguf") +
                       " --no-drive --json --ram-budget 9M -c 64 -b 16 --budgets 0 --engram-cache 16K");
  ASSERT_EQ(plan.exit_code, 0) << plan.out;
  const auto pj = nlohmann::json::parse(plan.out);
  EXPECT_EQ(pj["engram"]["tables"], 2);
  EXPECT_GT(pj["engram"]["rows_per_token"].get<int>(), 0);
  ASSERT_EQ(pj["budgets"].size(), 2u);
  EXPECT_EQ(pj["budgets"][0]["engram_tables"], "on disk");
  EXPECT_EQ(pj["budgets"][0]["engram_row_cache_bytes"], 16384);
  EXPECT_EQ(pj["budgets"][1]["engram_tables"], "in RAM");
  EXPECT_EQ(pj["budgets"][1]["engram_row_cache_bytes"], 0);
  CliRun plan_text =
      Strata("plan -m " + Path("e.gguf") + " --no-drive --ram-budget 9M -c 64 -b 16 --engram-cache 16K");
  ASSERT_EQ(plan_text.exit_code, 0) << plan_text.out;
  EXPECT_NE(plan_text.out.find("engram: 2 tables"), std::string::npos) << plan_text.out;
  EXPECT_NE(plan_text.out.find("floor (pinned + Engram row cache + KV cache and scratch"), std::string::npos)
      << plan_text.out;
  // Bad requests: one line each, naming the flag.
  for (const auto& [cmd, flag] : std::vector<std::pair<std::string, std::string>>{
           {args + " --ram-budget 9M --engram-cache 1K", "--engram-cache"},
           {args + " --ram-budget 9M --engram-cache lots", "--engram-cache"},
           {"make-model --preset tiny --engram-rows 1000 -o " + Path("x.gguf"), "--engram-"},
           {"make-model --preset engram-tiny --engram-encoding fp4 -o " + Path("x.gguf"),
            "--engram-encoding"},
           {"bench -m " + Path("e.gguf") + " -p 400 -n 8 --text " + Path("text.txt"), "--text"}}) {
    CliRun r = Strata(cmd);
    EXPECT_NE(r.exit_code, 0) << cmd;
    EXPECT_NE(r.out.find(flag), std::string::npos) << cmd << ": " << r.out;
    EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << cmd << ": " << r.out;
  }
  EXPECT_FALSE(std::filesystem::exists(Path("x.gguf")));
}

}  // namespace

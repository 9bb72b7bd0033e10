// `strata serve` as its users meet it: the real OpenAI and Anthropic SDKs (from
// scripts/setup.sh's npm cache) against a running server on a tiny model
// (tests/tools/serve_clients.js: both APIs, streaming and not, the prompt cache, stop
// strings, errors, 401/413/429, a client that leaves), then Ctrl-C stopping it cleanly;
// with --parallel slots: `strata run`'s tokens for the same seed and settings (asked
// with curl), and a bounded load test (8 clients, tests/tools/serve_load.js) with no
// error, one answer per question, batched steps, and a steady RSS; the prompt cache on
// disk across a restart, answering as `strata run` does; and bad flags refused in one
// line.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <regex>
#include <string>
#include <thread>

#include <nlohmann/json.hpp>

#include "tests/skip_or_fail.h"
#include "util/cache_dir.h"

namespace {

std::string Shell(const std::string& cmd, int* exit_code) {
  FILE* pipe = popen((cmd + " 2>&1").c_str(), "r");
  std::string out;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), pipe)) > 0) out.append(buf.data(), n);
  const int status = pclose(pipe);
  *exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return out;
}

// A running `strata serve`, its output in a file; stopped with SIGINT.
class Server {
 public:
  Server(const std::string& args, const std::string& log) : log_(log) {
    pid_ = ::fork();
    if (pid_ == 0) {
      const std::string cmd = std::string("exec ") + STRATA_BINARY + " serve " + args + " > '" +
                              log + "' 2>&1";
      ::execl("/bin/sh", "sh", "-c", cmd.c_str(), static_cast<char*>(nullptr));
      ::_exit(127);
    }
  }
  ~Server() {
    if (pid_ > 0 && !stopped_) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  // The port from the "listening on" line, or 0 if the server did not come up in 60 s.
  int Port() {
    const std::regex listening("listening on http://127\\.0\\.0\\.1:([0-9]+)");
    for (int i = 0; i < 600; ++i) {
      std::smatch m;
      const std::string out = Output();
      if (std::regex_search(out, m, listening)) return std::stoi(m[1]);
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return 0;
  }
  // SIGINT, then the exit code (or -1 after 30 s).
  int Stop() {
    ::kill(pid_, SIGINT);
    for (int i = 0; i < 300; ++i) {
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        stopped_ = true;
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return -1;
  }
  pid_t pid() const { return pid_; }  // the server's (the shell exec'd it)
  std::string Output() const {
    FILE* f = std::fopen(log_.c_str(), "r");
    if (!f) return "";
    std::string out;
    std::array<char, 4096> buf;
    size_t n;
    while ((n = std::fread(buf.data(), 1, buf.size(), f)) > 0) out.append(buf.data(), n);
    std::fclose(f);
    return out;
  }

 private:
  std::string log_;
  pid_t pid_ = -1;
  bool stopped_ = false;
};

class Serve : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("strata-serve-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::create_directories(dir_);
    int code = 0;
    const std::string out = Shell(std::string(STRATA_BINARY) + " make-model --preset tiny -o '" +
                                    Path("tiny.gguf") + "'",
                                &code);
    ASSERT_EQ(code, 0) << out;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string Path(const std::string& name) const { return (dir_ / name).string(); }
  std::filesystem::path dir_;
};

TEST_F(Serve, RealOpenAiAndAnthropicClientsGetWhatTheirApisPromise) {
  const std::filesystem::path modules = std::filesystem::path(strata::CacheDir()) / "node" / "node_modules";
  if (std::system("node --version >/dev/null 2>&1") != 0 || !std::filesystem::exists(modules / "openai") ||
      !std::filesystem::exists(modules / "@anthropic-ai" / "sdk")) {
    STRATA_SKIP_OR_FAIL("node or the openai / @anthropic-ai/sdk packages are missing (scripts/setup.sh)");
  }
  Server server("-m '" + Path("tiny.gguf") + "' --port 0 -t 1 --api-key sk-test --max-queue 0 --max-body 1M",
                Path("serve.log"));
  const int port = server.Port();
  ASSERT_GT(port, 0) << server.Output();
  int code = 0;
  const std::string out = Shell("NODE_PATH='" + modules.string() + "' node '" + STRATA_SOURCE_DIR +
                                  "/tests/tools/serve_clients.js' http://127.0.0.1:" +
                                  std::to_string(port) + " tiny sk-test",
                              &code);
  EXPECT_EQ(code, 0) << out << "\nserver:\n" << server.Output();
  EXPECT_NE(out.find("ok metrics"), std::string::npos) << out;
  EXPECT_EQ(server.Stop(), 0) << server.Output();
  EXPECT_NE(server.Output().find("strata serve: stopped after"), std::string::npos) << server.Output();
}

// Resident set size of process `pid`, in KiB (/proc/PID/status VmRSS).
long RssKib(pid_t pid) {
  FILE* f = std::fopen(("/proc/" + std::to_string(pid) + "/status").c_str(), "r");
  if (!f) return -1;
  char line[256];
  long kib = -1;
  while (std::fgets(line, sizeof line, f)) {
    if (std::sscanf(line, "VmRSS: %ld kB", &kib) == 1) break;
  }
  std::fclose(f);
  return kib;
}

// The value of a Prometheus metric in /metrics text.
double Metric(const std::string& text, const std::string& name) {
  std::smatch m;
  if (!std::regex_search(text, m, std::regex("\\n" + name + " ([0-9.e+]+)"))) return -1;
  return std::stod(m[1]);
}

TEST_F(Serve, ParallelSlotsAnswerAsRunDoesAndHoldUnderLoad) {
  const std::filesystem::path modules = std::filesystem::path(strata::CacheDir()) / "node" / "node_modules";
  if (std::system("node --version >/dev/null 2>&1") != 0 || std::system("curl --version >/dev/null 2>&1") != 0 ||
      !std::filesystem::exists(modules / "openai") || !std::filesystem::exists(modules / "@anthropic-ai" / "sdk")) {
    STRATA_SKIP_OR_FAIL("node, curl or the openai / @anthropic-ai/sdk packages are missing (scripts/setup.sh)");
  }
  // What `strata run` writes for a seeded, sampled (not greedy) completion.
  int code = 0;
  const std::string settings = "--temp 0.7 --top-k 20 --top-p 0.9 --min-p 0.05 --seed 7 --ignore-eos";
  std::string want = Shell("(" + std::string(STRATA_BINARY) + " run -m '" + Path("tiny.gguf") +
                               "' -t 1 -n 12 " + settings + " -p 'Call me Ishmael.' 2>/dev/null)",
                           &code);
  ASSERT_EQ(code, 0) << want;
  ASSERT_TRUE(want.ends_with("\n"));
  want.pop_back();

  Server server("-m '" + Path("tiny.gguf") + "' --port 0 -t 1 --parallel 3 --api-key sk-test",
                Path("serve.log"));
  const int port = server.Port();
  ASSERT_GT(port, 0) << server.Output();
  const std::string url = "http://127.0.0.1:" + std::to_string(port);
  const std::string body =
      R"({"model": "tiny", "prompt": "Call me Ishmael.", "max_tokens": 12, "temperature": 0.7,)"
      R"( "top_k": 20, "top_p": 0.9, "min_p": 0.05, "seed": 7, "ignore_eos": true})";
  const std::string got = Shell("curl -sS " + url + "/v1/completions -H 'x-api-key: sk-test' "
                                "-H 'content-type: application/json' -d '" + body + "'",
                                &code);
  ASSERT_EQ(code, 0) << got;
  const nlohmann::json answer = nlohmann::json::parse(got, nullptr, false);
  ASSERT_FALSE(answer.is_discarded()) << got;
  EXPECT_EQ(answer["choices"][0]["text"].get<std::string>(), want) << got;
  EXPECT_EQ(answer["usage"]["completion_tokens"].get<int>(), 12) << got;

  auto load = [&](int per_client) {
    const std::string out = Shell("NODE_PATH='" + modules.string() + "' node '" + STRATA_SOURCE_DIR +
                                      "/tests/tools/serve_load.js' " + url + " tiny sk-test 8 " +
                                      std::to_string(per_client),
                                  &code);
    EXPECT_EQ(code, 0) << out << "\nserver:\n" << server.Output();
    EXPECT_NE(out.find("ok load"), std::string::npos) << out;
    std::printf("%s", out.c_str());
  };
  load(4);  // warm: every slot has run, every buffer has its size
  const long rss_warm = RssKib(server.pid());
  load(12);
  const long rss_after = RssKib(server.pid());
  ASSERT_GT(rss_warm, 0);
  std::printf("server RSS: %ld KiB after the warm-up, %ld KiB after 96 more requests\n", rss_warm,
              rss_after);
  // Under AddressSanitizer freed memory waits in its quarantine (256 MiB) before reuse,
  // so RSS grows by design there; the load still runs, for the memory errors ASan finds.
#if defined(__SANITIZE_ADDRESS__)
  const bool sanitized = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
  const bool sanitized = true;
#else
  const bool sanitized = false;
#endif
#else
  const bool sanitized = false;
#endif
  if (!sanitized) {
    EXPECT_LT(rss_after - rss_warm, 16 * 1024) << "the server's RSS grows under load";
  }
  const std::string metrics = Shell("curl -sS " + url + "/metrics -H 'x-api-key: sk-test'", &code);
  EXPECT_EQ(Metric(metrics, "strata_rejected_total"), 0) << metrics;
  EXPECT_EQ(Metric(metrics, "strata_requests_total"), 129) << metrics;
  EXPECT_GT(Metric(metrics, "strata_decode_step_tokens_total"), Metric(metrics, "strata_decode_steps_total"))
      << "no step decoded two slots at once\n" << metrics;
  EXPECT_EQ(Metric(metrics, "strata_slots"), 3) << metrics;
  EXPECT_EQ(server.Stop(), 0) << server.Output();
}

TEST_F(Serve, APromptCacheOnDiskSurvivesARestart) {
  if (std::system("curl --version >/dev/null 2>&1") != 0) {
    STRATA_SKIP_OR_FAIL("curl is missing (scripts/setup.sh)");
  }
  const std::string text =
      "Call me Ishmael. Some years ago, never mind how long precisely, having little or no money "
      "in my purse, and nothing particular to interest me on shore, I thought I would sail about "
      "a little and see the watery part of the world.";
  const std::string more = " It is a way I have of driving off the spleen.";
  const std::string flags = "-m '" + Path("tiny.gguf") + "' --port 0 -t 1 --prompt-cache-dir '" +
                            Path("prompts") + "' --prompt-cache-min 16";
  auto complete = [&](int port, const std::string& prompt, int max_tokens) {
    int code = 0;
    const std::string body = nlohmann::json{{"model", "tiny"},
                                            {"prompt", prompt},
                                            {"max_tokens", max_tokens},
                                            {"temperature", 0},
                                            {"ignore_eos", true}}
                                 .dump();
    std::ofstream(Path("body.json")) << body;
    const std::string out = Shell("curl -sS http://127.0.0.1:" + std::to_string(port) +
                                      "/v1/completions -H 'content-type: application/json' "
                                      "--data-binary @'" + Path("body.json") + "'",
                                  &code);
    EXPECT_EQ(code, 0) << out;
    const nlohmann::json j = nlohmann::json::parse(out, nullptr, false);
    EXPECT_FALSE(j.is_discarded()) << out;
    return j;
  };
  {
    Server first(flags, Path("first.log"));
    const int port = first.Port();
    ASSERT_GT(port, 0) << first.Output();
    const nlohmann::json a = complete(port, text, 4);
    EXPECT_EQ(a["usage"]["prompt_tokens_details"]["cached_tokens"].get<int>(), 0) << a.dump();
    EXPECT_EQ(first.Stop(), 0) << first.Output();
  }
  Server second(flags, Path("second.log"));
  const int port = second.Port();
  ASSERT_GT(port, 0) << second.Output();
  EXPECT_NE(second.Output().find("prompt cache " + Path("prompts") + " ("), std::string::npos)
      << second.Output();
  const nlohmann::json b = complete(port, text + more, 6);
  // The first server stored its prompt (BOS and the text's tokens): the second loads it.
  EXPECT_GE(b["usage"]["prompt_tokens_details"]["cached_tokens"].get<int>(),
            static_cast<int>(text.size()))
      << b.dump();
  int code = 0;
  std::string want = Shell("(" + std::string(STRATA_BINARY) + " run -m '" + Path("tiny.gguf") +
                               "' -t 1 -n 6 --temp 0 --ignore-eos -p '" + text + more +
                               "' 2>/dev/null)",
                           &code);
  ASSERT_EQ(code, 0) << want;
  want.pop_back();  // run's final newline
  EXPECT_EQ(b["choices"][0]["text"].get<std::string>(), want) << "a loaded prefix changed the answer";
  const std::string metrics = Shell("curl -sS http://127.0.0.1:" + std::to_string(port) + "/metrics", &code);
  EXPECT_EQ(Metric(metrics, "strata_prompt_cache_hits_total"), 1) << metrics;
  EXPECT_GE(Metric(metrics, "strata_prompt_tokens_from_disk_total"), double(text.size())) << metrics;
  EXPECT_EQ(second.Stop(), 0) << second.Output();
  // Entries are whole files; nothing half-written stays.
  for (const auto& e : std::filesystem::directory_iterator(Path("prompts"))) {
    EXPECT_TRUE(e.path().string().ends_with(".strata-prompt")) << e.path();
  }
}

// Tools on a V3.1-format model (the tiny preset with the DeepSeek vocabulary, served
// with --chat-template deepseek3.1): both APIs take tool definitions, a call and its
// result in the history, through the official SDKs' request shapes (curl here; the
// synthetic model's answer is noise, so this checks what goes in; what comes out is
// tested on scripted tokens in StreamAnswer.TakesToolCallsOutOfTheTokens).
TEST_F(Serve, ToolConversationsAreTakenOnAV31Model) {
  const std::filesystem::path vocab = std::filesystem::path(strata::CacheDir()) / "deepseek-v3" / "tokenizer.json";
  if (!std::filesystem::exists(vocab) || std::system("curl --version >/dev/null 2>&1") != 0) {
    STRATA_SKIP_OR_FAIL("the DeepSeek-V3 tokenizer or curl is missing (scripts/setup.sh)");
  }
  int code = 0;
  std::string out = Shell(std::string(STRATA_BINARY) + " make-model --preset tiny --tokenizer '" +
                              vocab.string() + "' -o '" + Path("v3vocab.gguf") + "'",
                          &code);
  ASSERT_EQ(code, 0) << out;
  Server server("-m '" + Path("v3vocab.gguf") + "' --port 0 -t 1 --chat-template deepseek3.1",
                Path("serve.log"));
  const int port = server.Port();
  ASSERT_GT(port, 0) << server.Output();
  auto post = [&](const std::string& path, const nlohmann::json& body) {
    std::ofstream(Path("body.json")) << body.dump();
    const std::string response = Shell("curl -sS -w '\\n%{http_code}' http://127.0.0.1:" +
                                           std::to_string(port) + path +
                                           " -H 'content-type: application/json' --data-binary @'" +
                                           Path("body.json") + "'",
                                       &code);
    return response;
  };
  const nlohmann::json tool = {{"type", "function"},
                               {"function", {{"name", "get_weather"},
                                             {"description", "The weather now."},
                                             {"parameters", {{"type", "object"}}}}}};
  const std::string openai = post(
      "/v1/chat/completions",
      {{"model", "v3vocab"},
       {"max_tokens", 4},
       {"tools", {tool}},
       {"messages",
        {{{"role", "user"}, {"content", "Weather on Nantucket?"}},
         {{"role", "assistant"},
          {"content", nullptr},
          {"tool_calls",
           {{{"id", "c1"}, {"type", "function"},
             {"function", {{"name", "get_weather"}, {"arguments", "{\"city\": \"Nantucket\"}"}}}}}}},
         {{"role", "tool"}, {"tool_call_id", "c1"}, {"content", "fog"}}}}});
  EXPECT_TRUE(openai.ends_with("\n200")) << openai;
  EXPECT_NE(openai.find("\"chat.completion\""), std::string::npos) << openai;
  const std::string anthropic = post(
      "/v1/messages",
      {{"model", "v3vocab"},
       {"max_tokens", 4},
       {"tools", {{{"name", "get_weather"}, {"input_schema", {{"type", "object"}}}}}},
       {"messages",
        {{{"role", "user"}, {"content", "Weather?"}},
         {{"role", "assistant"},
          {"content", {{{"type", "tool_use"}, {"id", "t1"}, {"name", "get_weather"}, {"input", {{"city", "x"}}}}}}},
         {{"role", "user"},
          {"content", {{{"type", "tool_result"}, {"tool_use_id", "t1"}, {"content", "fog"}}}}}}}});
  EXPECT_TRUE(anthropic.ends_with("\n200")) << anthropic;
  const std::string refused = post("/v1/chat/completions",
                                   {{"model", "v3vocab"},
                                    {"tools", {tool}},
                                    {"tool_choice", "required"},
                                    {"messages", {{{"role", "user"}, {"content", "x"}}}}});
  EXPECT_TRUE(refused.ends_with("\n400")) << refused;
  EXPECT_NE(refused.find("\"param\":\"tool_choice\""), std::string::npos) << refused;
  EXPECT_EQ(server.Stop(), 0) << server.Output();
}

TEST_F(Serve, BadFlagsAndAnAddressInUseAreOneLine) {
  int code = 0;
  std::string out = Shell(std::string(STRATA_BINARY) + " serve -m '" + Path("tiny.gguf") + "' --think maybe", &code);
  EXPECT_EQ(code, 1);
  EXPECT_NE(out.find("--think must be on or off"), std::string::npos) << out;
  out = Shell(std::string(STRATA_BINARY) + " serve -m '" + Path("tiny.gguf") + "' --host not-an-ip", &code);
  EXPECT_EQ(code, 1);
  EXPECT_NE(out.find("--host 'not-an-ip'"), std::string::npos) << out;
  out = Shell(std::string(STRATA_BINARY) + " serve -m '" + Path("tiny.gguf") +
                  "' --prompt-cache-dir '" + Path("c") + "' --prompt-cache-size lots",
              &code);
  EXPECT_EQ(code, 1);
  EXPECT_NE(out.find("--prompt-cache-size"), std::string::npos) << out;
  out = Shell(std::string(STRATA_BINARY) + " serve -m '" + Path("tiny.gguf") +
                  "' --prompt-cache-dir /proc/strata-cannot-be-here",
              &code);
  EXPECT_EQ(code, 1);
  EXPECT_NE(out.find("--prompt-cache-dir /proc/strata-cannot-be-here"), std::string::npos) << out;
  out = Shell(std::string(STRATA_BINARY) + " serve -m '" + Path("missing.gguf") + "'", &code);
  EXPECT_EQ(code, 1);
  EXPECT_NE(out.find("missing.gguf"), std::string::npos) << out;
  Server first("-m '" + Path("tiny.gguf") + "' --port 0 -t 1", Path("first.log"));
  const int port = first.Port();
  ASSERT_GT(port, 0) << first.Output();
  out = Shell(std::string(STRATA_BINARY) + " serve -m '" + Path("tiny.gguf") + "' -t 1 --port " +
                std::to_string(port),
            &code);
  EXPECT_EQ(code, 1);
  EXPECT_NE(out.find("cannot listen on 127.0.0.1:" + std::to_string(port)), std::string::npos) << out;
  EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), 1) << out;
  EXPECT_EQ(first.Stop(), 0);
}

}  // namespace

// strata chat as people use it. Through a real terminal (tmux: send-keys, capture-pane):
// two turns, /stats, /set temp 0, /reset, Ctrl-C in the middle of a long answer and
// another turn after it, then Ctrl-D; assertions are on what the screen shows. Piped:
// each line is one message, answers only on stdout; bad input (invalid UTF-8, a 1 MB
// line, unknown commands, /load of a missing or corrupt file, /set with a bad value)
// gets a message and the session goes on; /save then /load restores a conversation.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <thread>
#include "tests/skip_or_fail.h"

namespace {

std::string Sh(const std::string& cmd, int* code = nullptr) {
  FILE* p = popen(cmd.c_str(), "r");
  std::string out;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) out.append(buf.data(), n);
  const int st = pclose(p);
  if (code) *code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return out;
}

size_t Count(const std::string& s, const std::string& what) {
  size_t n = 0;
  for (size_t at = s.find(what); at != std::string::npos; at = s.find(what, at + 1)) ++n;
  return n;
}

class ChatCli : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("strata-chat-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::create_directories(dir_);
    int code = 0;
    Sh(std::string(STRATA_BINARY) + " make-model --preset tiny -o " + Path("m.gguf") + " 2>&1",
       &code);
    ASSERT_EQ(code, 0);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string Path(const std::string& name) const { return (dir_ / name).string(); }
  std::filesystem::path dir_;
};

// A strata chat in a detached tmux session on a private server.
class Tmux {
 public:
  Tmux(const std::string& command, const std::string& dir)
      : server_("strata-test-" + std::to_string(::getpid())), dir_(dir) {
    Sh(Base() + " new-session -d -s chat -x 160 -y 50 \"" + command +
       "; echo EXITED \\$?; sleep 600\" 2>&1");
  }
  ~Tmux() { Sh(Base() + " kill-server 2>/dev/null"); }
  void Send(const std::string& keys) { Sh(Base() + " send-keys -t chat " + keys); }
  void Type(const std::string& line) { Send("-l '" + line + "'"), Send("Enter"); }
  std::string Screen() { return Sh(Base() + " capture-pane -p -J -t chat -S -2000"); }
  // Waits until `what` appears at least `times` times on the screen.
  bool WaitFor(const std::string& what, size_t times = 1, int seconds = 60) {
    const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
    while (std::chrono::steady_clock::now() < end) {
      if (Count(Screen(), what) >= times) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return false;
  }

 private:
  std::string Base() const { return "tmux -L " + server_; }
  std::string server_;
  std::string dir_;
};

TEST_F(ChatCli, AConversationInATerminal) {
  if (Sh("command -v tmux").empty()) STRATA_SKIP_OR_FAIL("tmux is not installed (scripts/setup.sh)");
  Tmux t(std::string(STRATA_BINARY) + " chat -m " + Path("m.gguf") +
             " -c 60000 -n 24 -s 7 --ignore-eos --color never --history-file " + Path("history"),
         dir_.string());
  ASSERT_TRUE(t.WaitFor("/help for commands")) << t.Screen();
  EXPECT_NE(t.Screen().find("random weights"), std::string::npos) << "says the model is noise";

  t.Type("hello there");
  ASSERT_TRUE(t.WaitFor("[24 tokens, ")) << t.Screen();
  t.Type("/stats");
  ASSERT_TRUE(t.WaitFor("1 turns")) << t.Screen();
  EXPECT_NE(t.Screen().find("context "), std::string::npos);
  EXPECT_NE(t.Screen().find("tiers: all-in-RAM"), std::string::npos) << t.Screen();
  t.Type("/set temp 0");
  ASSERT_TRUE(t.WaitFor("temp = 0")) << t.Screen();
  t.Type("second turn");
  ASSERT_TRUE(t.WaitFor("[24 tokens, ", 2)) << t.Screen();

  // A long answer, stopped with Ctrl-C; then the conversation goes on.
  t.Type("/set n-predict -1");
  ASSERT_TRUE(t.WaitFor("n-predict = -1")) << t.Screen();
  t.Type("tell me everything");
  // Ctrl-C once the answer is streaming (its text follows the typed line).
  const auto streaming = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  for (;;) {
    const std::string screen = t.Screen();
    const size_t at = screen.rfind("tell me everything");
    if (at != std::string::npos && screen.size() - at > 400) break;
    ASSERT_LT(std::chrono::steady_clock::now(), streaming) << screen;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  t.Send("C-c");
  // Rarely (seen twice in ~20 runs, each time on the first run after a build) the key
  // seems not to reach the program; a second press, as a user would give, is allowed.
  // Not too soon: on a loaded machine tmux can lag seconds behind a fast stream, and a
  // second press that lands after the interruption exits at the prompt.
  if (!t.WaitFor("| interrupted]", 1, 30)) {
    // Only while the answer still streams: at the prompt a press leaves.
    const std::string before = t.Screen();
    std::this_thread::sleep_for(std::chrono::seconds(1));
    if (t.Screen() != before) t.Send("C-c");
  }
  ASSERT_TRUE(t.WaitFor("| interrupted]")) << t.Screen();
  t.Type("/set n-predict 24");
  t.Type("after the interruption");
  ASSERT_TRUE(t.WaitFor("[24 tokens, ", 3)) << t.Screen();
  t.Type("/reset");
  ASSERT_TRUE(t.WaitFor("conversation cleared")) << t.Screen();
  t.Type("/stats");
  ASSERT_TRUE(t.WaitFor("0 turns")) << t.Screen();
  t.Send("C-d");
  ASSERT_TRUE(t.WaitFor("EXITED 0")) << t.Screen();
  // The line history was kept (libedit writes a space as \040).
  std::ifstream history(Path("history"));
  const std::string h{std::istreambuf_iterator<char>(history), {}};
  EXPECT_NE(h.find("second\\040turn"), std::string::npos) << h;
}

TEST_F(ChatCli, CtrlCAtThePromptLeaves) {
  if (Sh("command -v tmux").empty()) STRATA_SKIP_OR_FAIL("tmux is not installed (scripts/setup.sh)");
  Tmux t(std::string(STRATA_BINARY) + " chat -m " + Path("m.gguf") + " --history-file " +
             Path("history"),
         dir_.string());
  ASSERT_TRUE(t.WaitFor("/help for commands")) << t.Screen();
  t.Send("C-c");
  ASSERT_TRUE(t.WaitFor("EXITED 0")) << t.Screen();
}

TEST_F(ChatCli, PipedMessagesGetOneAnswerEachAndBadInputIsSurvived) {
  std::ofstream(Path("corrupt.json"))
      << "{\"format\": \"strata-chat\", \"version\": 1, \"messages\": [{\"role\": \"assistant\"";
  std::ofstream in(Path("in.txt"), std::ios::binary);
  in << "first message\n"
     << "bad \xff\xfe utf-8\n"
     << std::string(1 << 20, 'a') << "\n"
     << "/frobnicate\n"
     << "/load " << Path("missing.json") << "\n"
     << "/load " << Path("corrupt.json") << "\n"
     << "/set temp hot\n"
     << "/set top-p 7\n"
     << "/set bogus 1\n"
     << "/save " << Path("conv.json") << "\n"
     << "last message\n";
  in.close();
  int code = 0;
  const std::string out = Sh(std::string(STRATA_BINARY) + " chat -m " + Path("m.gguf") +
                                 " -n 6 --temp 0 < " + Path("in.txt") + " 2>" + Path("err.txt"),
                             &code);
  std::ifstream e(Path("err.txt"));
  const std::string err{std::istreambuf_iterator<char>(e), {}};
  ASSERT_EQ(code, 0) << err;
  // Three messages were answered (the 1 MB one did not fit the context).
  EXPECT_EQ(Count(err, "[6 tokens, "), 3u) << err;
  EXPECT_EQ(out.find("> "), std::string::npos) << "no prompts when piped";
  EXPECT_EQ(out.find("\x1b["), std::string::npos) << "no colours when piped";
  for (const char* want : {"not valid UTF-8", "context full", "unknown command '/frobnicate'",
                           "missing.json", "is not a strata conversation", "'hot' is not a number",
                           "outside [0", "unknown setting 'bogus'", "saved 4 messages"}) {
    EXPECT_NE(err.find(want), std::string::npos) << want << "\n" << err.substr(0, 3000);
  }

  // The saved conversation loads and continues.
  std::ofstream(Path("in2.txt")) << "/load " << Path("conv.json") << "\n/stats\nand then?\n";
  Sh(std::string(STRATA_BINARY) + " chat -m " + Path("m.gguf") + " -n 6 --temp 0 < " +
         Path("in2.txt") + " >/dev/null 2>" + Path("err2.txt"),
     &code);
  std::ifstream e2(Path("err2.txt"));
  const std::string err2{std::istreambuf_iterator<char>(e2), {}};
  EXPECT_EQ(code, 0) << err2;
  EXPECT_NE(err2.find("loaded 4 messages"), std::string::npos) << err2;
  EXPECT_NE(err2.find("[6 tokens, "), std::string::npos) << err2;
}

}  // namespace

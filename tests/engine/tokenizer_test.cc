// The tokenizer against authoritative vectors: llama.cpp's ggml-vocab-*.gguf files with
// their .inp/.out test pairs (every string must tokenize to exactly the listed ids),
// and round trips, special tokens and streaming decode.
#include "engine/tokenizer/tokenizer.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "engine/chat_session.h"
#include "engine/chat_template.h"
#include "engine/gguf_vocab.h"
#include "engine/tool_calls.h"
#include "storage/gguf.h"
#include "storage/gguf_writer.h"
#include "util/cache_dir.h"
#include "util/utf8.h"
#include "tests/deepseek_v3_tokenizer.h"
#include "tests/skip_or_fail.h"

namespace strata::engine {
namespace {

std::filesystem::path CacheDir() { return strata::CacheDir(); }

std::string ReadAll(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

std::unique_ptr<Tokenizer> Load(const std::filesystem::path& path) {
  auto f = storage::ReadGgufFile(path.string());
  EXPECT_TRUE(f.ok()) << f.status().ToString();
  auto t = Tokenizer::FromGguf(*f);
  EXPECT_TRUE(t.ok()) << t.status().ToString();
  return t.ok() ? std::move(*t) : nullptr;
}

class LlamaCppVectors : public ::testing::TestWithParam<std::string> {};

TEST_P(LlamaCppVectors, EveryStringMatches) {
  const auto gguf = CacheDir() / "llama-vocab" / ("ggml-vocab-" + GetParam() + ".gguf");
  if (!std::filesystem::exists(gguf)) {
    STRATA_SKIP_OR_FAIL(gguf << " missing (run scripts/setup.sh)");
  }
  auto tok = Load(gguf);
  ASSERT_NE(tok, nullptr);
  // .inp: strings separated by "\n__ggml_vocab_test__\n"; .out: one line of ids each.
  const std::string inp = ReadAll(gguf.string() + ".inp");
  std::vector<std::string> inputs;
  const std::string sep = "\n__ggml_vocab_test__\n";
  for (size_t pos = 0;;) {
    const size_t next = inp.find(sep, pos);
    if (next == std::string::npos) {
      inputs.push_back(inp.substr(pos));
      break;
    }
    inputs.push_back(inp.substr(pos, next - pos));
    pos = next + sep.size();
  }
  std::istringstream out(ReadAll(gguf.string() + ".out"));
  std::vector<std::vector<int32_t>> expected;
  for (std::string line; std::getline(out, line);) {
    std::istringstream ids(line);
    expected.emplace_back();
    for (int32_t id; ids >> id;) expected.back().push_back(id);
  }
  ASSERT_GE(inputs.size(), expected.size());
  int mismatches = 0;
  for (size_t i = 0; i < expected.size(); ++i) {
    const auto got = tok->Encode(inputs[i], /*add_bos=*/false, /*parse_special=*/false);
    if (got != expected[i]) {
      ++mismatches;
      ADD_FAILURE() << GetParam() << " case " << i << " '" << inputs[i] << "'";
    } else {
      // Decoding gives the text back (byte-level BPE is lossless).
      EXPECT_EQ(tok->Decode(got), inputs[i]) << GetParam() << " case " << i;
    }
  }
  std::printf("[ %s ] %zu/%zu strings identical to llama.cpp\n", GetParam().c_str(),
              expected.size() - mismatches, expected.size());
}

INSTANTIATE_TEST_SUITE_P(Vocabs, LlamaCppVectors,
                         ::testing::Values("deepseek-llm", "deepseek-coder", "gpt-2", "llama-bpe",
                                           "qwen2", "mpt", "starcoder", "refact", "command-r"),
                         [](const auto& p) {
                           std::string n = p.param;
                           for (char& c : n) c = c == '-' ? '_' : c;
                           return n;
                         });

}  // namespace
}  // namespace strata::engine

namespace strata::engine {
namespace {

// DeepSeek-V3 (pre-tokenizer deepseek-v3) against the independent JavaScript encoder.
class DeepseekV3 : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { tokenizer_ = testing::LoadDeepseekV3Tokenizer().release(); }
  static void TearDownTestSuite() { delete tokenizer_; }

  void SetUp() override {
    if (!tokenizer_) {
      STRATA_SKIP_OR_FAIL("DeepSeek-V3 tokenizer.json not cached (run scripts/setup.sh)");
    }
  }

  static Tokenizer* tokenizer_;
};
Tokenizer* DeepseekV3::tokenizer_ = nullptr;

std::vector<std::string> OracleInputs() {
  std::vector<std::string> inputs;
  std::istringstream lines(
      ReadAll(std::filesystem::path(STRATA_SOURCE_DIR) / "tests/engine/data/tokenizer_lines.txt"));
  for (std::string line; std::getline(lines, line);) inputs.push_back(line);
  // llama.cpp's own tricky strings (whitespace runs, newlines, mixed scripts).
  const std::string inp = ReadAll(CacheDir() / "llama-vocab" / "ggml-vocab-deepseek-llm.gguf.inp");
  const std::string sep = "\n__ggml_vocab_test__\n";
  for (size_t pos = 0, next; (next = inp.find(sep, pos)) != std::string::npos;
       pos = next + sep.size()) {
    inputs.push_back(inp.substr(pos, next - pos));
  }
  // Real prose: the first 200 paragraphs of Moby-Dick, and one 20 kB chunk whole.
  const std::string moby = ReadAll(CacheDir() / "text" / "mobydick.txt");
  size_t pos = 0;
  for (int i = 0; i < 200 && pos < moby.size(); ++i) {
    const size_t end = moby.find("\r\n\r\n", pos) != std::string::npos ? moby.find("\r\n\r\n", pos)
                                                                       : moby.find("\n\n", pos);
    if (end == std::string::npos) break;
    inputs.push_back(moby.substr(pos, end - pos));
    pos = end + 2;
  }
  if (moby.size() > 40000) inputs.push_back(moby.substr(20000, 20000));
  return inputs;
}

TEST_F(DeepseekV3, MatchesTheIndependentEncoder) {
  const auto node_modules = CacheDir() / "node" / "node_modules";
  if (std::system("node --version >/dev/null 2>&1") != 0 ||
      !std::filesystem::exists(node_modules)) {
    STRATA_SKIP_OR_FAIL("node or @lenml/tokenizers missing: the oracle comparison cannot run");
  }
  const std::vector<std::string> inputs = OracleInputs();
  ASSERT_GT(inputs.size(), 250u);
  const auto dir = std::filesystem::temp_directory_path();
  const auto in_path = dir / ("strata-oracle-in-" + std::to_string(::getpid()) + ".json");
  const auto out_path = dir / ("strata-oracle-out-" + std::to_string(::getpid()) + ".json");
  { std::ofstream(in_path) << nlohmann::json(inputs).dump(); }
  const std::string cmd = "NODE_PATH='" + node_modules.string() + "' node '" + STRATA_SOURCE_DIR +
                          "/tests/engine/deepseek_v3_oracle.js' < '" + in_path.string() + "' > '" +
                          out_path.string() + "'";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  const auto expected = nlohmann::json::parse(ReadAll(out_path));
  std::filesystem::remove(in_path);
  std::filesystem::remove(out_path);
  ASSERT_EQ(expected.size(), inputs.size());
  size_t same = 0, total_tokens = 0;
  for (size_t i = 0; i < inputs.size(); ++i) {
    const auto want = expected[i].get<std::vector<int32_t>>();
    const auto got = tokenizer_->Encode(inputs[i], /*add_bos=*/false, /*parse_special=*/true);
    total_tokens += want.size();
    if (got == want) {
      ++same;
    } else {
      ADD_FAILURE() << "input " << i << " differs: '" << inputs[i].substr(0, 120) << "'";
    }
  }
  std::printf("[ deepseek-v3 ] %zu/%zu inputs (%zu tokens) identical to @lenml/tokenizers\n", same,
              inputs.size(), total_tokens);
}

TEST_F(DeepseekV3, SpecialTokensAndBos) {
  const auto ids =
      tokenizer_->Encode("<｜User｜>Hi<｜Assistant｜>", /*add_bos=*/true, /*parse_special=*/true);
  ASSERT_EQ(ids.size(), 4u);
  EXPECT_EQ(ids[0], 0);  // BOS exactly once
  EXPECT_EQ(ids[1], tokenizer_->Find("<｜User｜>"));
  EXPECT_EQ(ids[3], tokenizer_->Find("<｜Assistant｜>"));
  // <｜User｜> is a user-defined token in V3 (special: false): always recognised, as in
  // llama.cpp and HF. Control tokens (BOS) are recognised only with parse_special.
  EXPECT_EQ(tokenizer_->Encode("<｜User｜>", false, false).size(), 1u);
  const auto plain = tokenizer_->Encode("<｜begin▁of▁sentence｜>", false, false);
  EXPECT_GT(plain.size(), 1u);
  EXPECT_EQ(tokenizer_->Decode(plain), "<｜begin▁of▁sentence｜>");
  EXPECT_EQ(tokenizer_->Encode("<｜begin▁of▁sentence｜>", false, true), std::vector<int32_t>{0});
}

// A conversation with a past answer (its reasoning included, as strata's chat keeps it)
// rendered by each template, in the DeepSeek vocabulary, token by token with the
// markup shown: exactly what the models' published chat templates write (V2-Lite-Chat,
// V3, R1, V3.1 and V4; see docs/CHAT_TEMPLATES.md for what each does with history).
TEST_F(DeepseekV3, ConversationsRenderAsThePublishedTemplates) {
  const std::vector<ChatMessage> messages = {
      {"user", "hi"}, {"assistant", "<think>r</think>ok"}, {"user", "again"}};
  auto render = [&](const char* name, bool thinking, bool continue_last = false,
                    std::vector<ChatMessage> m = {}) {
    if (m.empty()) m = messages;
    const std::vector<int32_t> ids = EncodeConversation(*tokenizer_, *ChatTemplateByName(name),
                                                        "S", m, thinking, continue_last);
    std::string out;
    for (const int32_t id : ids) out += tokenizer_->TokenBytes(id, /*render_special=*/true);
    return out;
  };
  const std::string bos = "<｜begin▁of▁sentence｜>S", eos = "<｜end▁of▁sentence｜>";
  EXPECT_EQ(render("deepseek2", true),
            bos + "\n\nUser: hi\n\nAssistant: <think>r</think>ok" + eos + "User: again\n\nAssistant:");
  EXPECT_EQ(render("deepseek3", true),
            bos + "<｜User｜>hi<｜Assistant｜><think>r</think>ok" + eos + "<｜User｜>again<｜Assistant｜>");
  EXPECT_EQ(render("deepseek-r1", true),
            bos + "<｜User｜>hi<｜Assistant｜>ok" + eos + "<｜User｜>again<｜Assistant｜><think>\n");
  EXPECT_EQ(render("deepseek3.1", true),
            bos + "<｜User｜>hi<｜Assistant｜><think></think>ok" + eos + "<｜User｜>again<｜Assistant｜><think>");
  EXPECT_EQ(render("deepseek3.1", false),
            bos + "<｜User｜>hi<｜Assistant｜><think></think>ok" + eos +
                "<｜User｜>again<｜Assistant｜><think></think>");
  EXPECT_EQ(render("deepseek4", true),
            bos + "<｜User｜>hi<｜Assistant｜></think>ok" + eos + "<｜User｜>again<｜Assistant｜><think>");
  EXPECT_EQ(render("deepseek4", false),
            bos + "<｜User｜>hi<｜Assistant｜></think>ok" + eos + "<｜User｜>again<｜Assistant｜></think>");
  // A final assistant message to continue: the answer prompt, then its text, unclosed.
  EXPECT_EQ(render("deepseek3", true, true, {{"user", "hi"}, {"assistant", "Once"}}),
            bos + "<｜User｜>hi<｜Assistant｜>Once");
  // The same message in a chat's history (ChatSession::Load) is a closed past answer.
  EXPECT_EQ(render("deepseek4", false, false, {{"user", "hi"}, {"assistant", "Once"}}),
            bos + "<｜User｜>hi<｜Assistant｜></think>Once" + eos);
}

// Tools in the V3.1 format: described after the system prompt; a call, its result and
// the answer after it written as V3.1's template writes them (no answer prompt after a
// result: the model answers right after it).
TEST_F(DeepseekV3, ToolCallsRenderAsTheV31Template) {
  const ChatTemplate t = *ChatTemplateByName("deepseek3.1");
  ASSERT_TRUE(t.SupportsTools());
  ASSERT_TRUE(ToolMarkers::Of(*tokenizer_).complete());
  const std::vector<ToolDefinition> tools = {{"get_weather", "Weather now.", R"({"type":"object"})"}};
  ChatMessage call{"assistant", "Let me look.", {{"c1", "get_weather", R"({"city":"Nantucket"})"}}, ""};
  ChatMessage result{"tool", "fog", {}, "c1"};
  auto render = [&](const std::vector<ChatMessage>& m) {
    std::string out;
    for (const int32_t id : EncodeConversation(*tokenizer_, t, "S", m, false, true, tools)) {
      out += tokenizer_->TokenBytes(id, /*render_special=*/true);
    }
    return out;
  };
  const std::string head = "<｜begin▁of▁sentence｜>S\n\n" + ToolsSystemPrompt(tools);
  const std::string calls =
      "<｜User｜>weather?<｜Assistant｜><think></think>Let me look.<｜tool▁calls▁begin｜>"
      "<｜tool▁call▁begin｜>get_weather<｜tool▁sep｜>{\"city\":\"Nantucket\"}<｜tool▁call▁end｜>"
      "<｜tool▁calls▁end｜><｜end▁of▁sentence｜><｜tool▁output▁begin｜>fog<｜tool▁output▁end｜>";
  EXPECT_EQ(render({{"user", "weather?"}, call, result}), head + calls);
  EXPECT_EQ(render({{"user", "weather?"}, call, result, {"assistant", "Foggy."}, {"user", "thanks"}}),
            head + calls + "Foggy.<｜end▁of▁sentence｜><｜User｜>thanks<｜Assistant｜><think></think>");
  EXPECT_NE(head.find("### get_weather\nDescription: Weather now.\n\nParameters: {\"type\":\"object\"}"),
            std::string::npos);
}

// The calls come out of a stream of generated tokens: text before them is the answer,
// each call's name and arguments are what stands between its markers.
TEST_F(DeepseekV3, ToolCallParserTakesCallsOutOfTheStream) {
  const std::vector<int32_t> ids = tokenizer_->Encode(
      "I will check.<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>get_weather<｜tool▁sep｜>"
      "{\"city\": \"Nantucket\"}<｜tool▁call▁end｜><｜tool▁call▁begin｜>get_time<｜tool▁sep｜>{}"
      "<｜tool▁call▁end｜><｜tool▁calls▁end｜>",
      false, /*parse_special=*/true);
  ToolCallParser parser(ToolMarkers::Of(*tokenizer_));
  StreamingDecoder decoder(*tokenizer_);
  std::string text;
  for (const int32_t id : ids) text += parser.Push(id, decoder.Push(id));
  EXPECT_EQ(text, "I will check.");
  EXPECT_TRUE(parser.closed());
  ASSERT_EQ(parser.calls().size(), 2u);
  EXPECT_EQ(parser.calls()[0].name, "get_weather");
  EXPECT_EQ(parser.calls()[0].arguments, "{\"city\": \"Nantucket\"}");
  EXPECT_EQ(parser.calls()[1].name, "get_time");
  EXPECT_EQ(parser.calls()[1].arguments, "{}");
}

TEST_F(DeepseekV3, StreamingNeverSplitsACharacter) {
  // Byte-level tokens split multi-byte characters; the stream must hold them back.
  const std::string text = "日本語 😀👨‍👩‍👧 naïve";
  const auto ids = tokenizer_->Encode(text, false, false);
  StreamingDecoder stream(*tokenizer_);
  std::string out;
  for (int32_t id : ids) {
    const std::string piece = stream.Push(id);
    EXPECT_TRUE(IsValidUtf8(piece)) << "piece after token " << id;
    out += piece;
  }
  out += stream.Flush();
  EXPECT_EQ(out, text);
  // A lone continuation byte can never complete: it comes out as U+FFFD.
  const int32_t byte_token = tokenizer_->Find(ByteToUnicode(0x80));
  ASSERT_GE(byte_token, 0);
  StreamingDecoder bad(*tokenizer_);
  EXPECT_EQ(bad.Push(byte_token), "\xEF\xBF\xBD");
}

}  // namespace
}  // namespace strata::engine

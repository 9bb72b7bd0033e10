// strata serve's pieces without a socket: the strict parsing of both APIs' requests
// (every error names its field), stop strings over streamed text, the response shapes,
// and the slot's prompt cache, whose reuse must not change a bit of any answer.
#include <unistd.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "engine/tiered_model.h"
#include "gtest/gtest.h"
#include "server/api_request.h"
#include "server/api_response.h"
#include "server/slot.h"
#include "server/stop_matcher.h"
#include "tools/make_model.h"

namespace strata::server {
namespace {

using nlohmann::json;

TEST(ApiRequest, ChatTakesEveryFieldItKnows) {
  const ParsedRequest p = ParseRequest(Api::kChat, R"({
    "model": "m", "max_tokens": 7, "temperature": 0.5, "top_p": 0.9, "top_k": 20, "min_p": 0.1,
    "seed": 42, "stop": ["a", "bc"], "stream": true, "stream_options": {"include_usage": true},
    "user": "u", "n": 1, "reasoning_effort": "none",
    "messages": [{"role": "system", "content": "S1"}, {"role": "developer", "content": "S2"},
                 {"role": "user", "content": [{"type": "text", "text": "he"}, {"type": "text", "text": "llo"}]},
                 {"role": "assistant", "content": "hi", "reasoning_content": "r"},
                 {"role": "user", "content": "again"}]})");
  ASSERT_FALSE(p.error) << p.error->message;
  const GenerationRequest& r = p.request;
  EXPECT_EQ(r.model, "m");
  EXPECT_EQ(r.max_tokens, 7);
  EXPECT_FLOAT_EQ(r.sampling.temp, 0.5f);
  EXPECT_FLOAT_EQ(r.sampling.top_p, 0.9f);
  EXPECT_EQ(r.sampling.top_k, 20);
  EXPECT_FLOAT_EQ(r.sampling.min_p, 0.1f);
  EXPECT_EQ(r.sampling.seed, 42);
  EXPECT_EQ(r.stop, (std::vector<std::string>{"a", "bc"}));
  EXPECT_TRUE(r.stream);
  EXPECT_TRUE(r.include_usage);
  EXPECT_EQ(r.thinking, false);
  EXPECT_EQ(r.system, "S1\n\nS2");
  ASSERT_EQ(r.messages.size(), 3u);
  EXPECT_EQ(r.messages[0].content, "hello");
  EXPECT_EQ(r.messages[1].role, "assistant");
}

TEST(ApiRequest, DefaultsAreTheApisOwn) {
  const ParsedRequest chat =
      ParseRequest(Api::kChat, R"({"model": "m", "messages": [{"role": "user", "content": "x"}]})");
  ASSERT_FALSE(chat.error);
  EXPECT_EQ(chat.request.max_tokens, -1);
  EXPECT_FLOAT_EQ(chat.request.sampling.temp, 1.0f);
  EXPECT_EQ(chat.request.sampling.top_k, 0);
  EXPECT_FALSE(chat.request.thinking.has_value());
  const ParsedRequest completion = ParseRequest(Api::kCompletion, R"({"model": "m", "prompt": ["p"]})");
  ASSERT_FALSE(completion.error);
  EXPECT_EQ(completion.request.max_tokens, 16);
  EXPECT_EQ(completion.request.prompt, "p");
  const ParsedRequest messages = ParseRequest(Api::kMessages, R"({"model": "m", "max_tokens": 3,
      "system": [{"type": "text", "text": "sys"}], "thinking": {"type": "enabled", "budget_tokens": 100},
      "stop_sequences": ["END"], "messages": [{"role": "user", "content": "x"}]})");
  ASSERT_FALSE(messages.error) << messages.error->message;
  EXPECT_EQ(messages.request.system, "sys");
  EXPECT_EQ(messages.request.thinking, true);
  EXPECT_EQ(messages.request.stop, std::vector<std::string>{"END"});
}

struct BadCase {
  Api api;
  const char* body;
  const char* param;     // the field the error must name ("" for none)
  const char* message;   // a piece of the message
};

TEST(ApiRequest, EveryBadInputIsA400NamingTheField) {
  const BadCase cases[] = {
      {Api::kChat, "{not json", "", "not valid JSON"},
      {Api::kChat, "[1, 2]", "", "JSON object"},
      {Api::kChat, R"({"messages": []})", "model", "required"},
      {Api::kChat, R"({"model": "m"})", "messages", "required"},
      {Api::kChat, R"({"model": "m", "messages": []})", "messages", "user message"},
      {Api::kChat, R"({"model": "m", "messages": [{"role": "user", "content": "x"}], "foo": 1})", "foo", "unknown field"},
      {Api::kChat, R"({"model": "m", "messages": [{"role": "user", "content": "x"}], "max_tokens": -1})", "max_tokens", "at least 1"},
      {Api::kChat, R"({"model": "m", "messages": [{"role": "user", "content": "x"}], "max_tokens": 1.5})", "max_tokens", "integer"},
      {Api::kChat, R"({"model": "m", "messages": [{"role": "user", "content": "x"}], "temperature": 3})", "temperature", "between 0 and 2"},
      {Api::kChat, R"({"model": "m", "messages": [{"role": "user", "content": "x"}], "temperature": "hot"})", "temperature", "number"},
      {Api::kChat, R"({"model": "m", "messages": [{"role": "user", "content": "x"}], "n": 2})", "n", "between 1 and 1"},
      {Api::kChat, R"({"model": "m", "messages": [{"role": "user", "content": "x"}], "stop": [1]})", "stop", "strings"},
      {Api::kChat, R"({"model": "m", "messages": [{"role": "user", "content": "x"}], "stop": [""]})", "stop", "empty"},
      {Api::kChat, R"({"model": "m", "messages": [{"role": "user", "content": "x"}], "tools": [{"type": "function"}]})", "tools", "not supported"},
      {Api::kChat, R"({"model": "m", "messages": [{"role": "user", "content": "x"}], "stream_options": {"x": 1}})", "stream_options.x", "unknown"},
      {Api::kChat, R"({"model": "m", "messages": [{"role": "tool", "content": "x"}]})", "messages[0].role", "not supported"},
      {Api::kChat, R"({"model": "m", "messages": [{"role": "user", "content": [{"type": "image_url"}]}]})", "messages[0].content", "text only"},
      {Api::kChat, R"({"model": "m", "messages": [{"role": "user"}]})", "messages[0].content", "required"},
      {Api::kChat, R"({"model": "m", "messages": [{"role": "user", "content": "x", "extra": 1}]})", "messages[0].extra", "unknown"},
      {Api::kChat, R"({"model": "m", "messages": [{"role": "user", "content": "x"}], "frequency_penalty": 0.5})", "frequency_penalty", "not supported"},
      {Api::kCompletion, R"({"model": "m"})", "prompt", "required"},
      {Api::kCompletion, R"({"model": "m", "prompt": [1, 2]})", "prompt", "string"},
      {Api::kCompletion, R"({"model": "m", "prompt": "p", "echo": true})", "echo", "not supported"},
      {Api::kMessages, R"({"model": "m", "messages": [{"role": "user", "content": "x"}]})", "max_tokens", "required"},
      {Api::kMessages, R"({"model": "m", "max_tokens": 0, "messages": [{"role": "user", "content": "x"}]})", "max_tokens", "at least 1"},
      {Api::kMessages, R"({"model": "m", "max_tokens": 5, "temperature": 1.5, "messages": [{"role": "user", "content": "x"}]})", "temperature", "between 0 and 1"},
      {Api::kMessages, R"({"model": "m", "max_tokens": 5, "messages": [{"role": "assistant", "content": "x"}]})", "messages.0.role", "first message"},
      {Api::kMessages, R"({"model": "m", "max_tokens": 5, "messages": [{"role": "system", "content": "x"}]})", "messages.0.role", "user or assistant"},
      {Api::kMessages, R"({"model": "m", "max_tokens": 5, "thinking": {"type": "maybe"}, "messages": [{"role": "user", "content": "x"}]})", "thinking.type", "enabled or disabled"},
  };
  for (const BadCase& c : cases) {
    const ParsedRequest p = ParseRequest(c.api, c.body);
    ASSERT_TRUE(p.error) << c.body;
    EXPECT_EQ(p.error->status, 400) << c.body;
    EXPECT_EQ(p.error->param, c.param) << c.body << ": " << p.error->message;
    EXPECT_NE(p.error->message.find(c.message), std::string::npos) << c.body << ": " << p.error->message;
  }
}

TEST(StopMatcher, HoldsBackWhatCouldBecomeAStopStringAndCutsAtTheFirst) {
  StopMatcher m({"END", "STOP"});
  EXPECT_EQ(m.Push("hello E"), "hello ");
  EXPECT_EQ(m.Push("N"), "");
  EXPECT_EQ(m.Push("x S"), "ENx ");
  EXPECT_EQ(m.Push("TO"), "");
  EXPECT_FALSE(m.stopped());
  EXPECT_EQ(m.Push("P and END"), "");
  EXPECT_TRUE(m.stopped());
  EXPECT_EQ(m.matched(), "STOP");
  EXPECT_EQ(m.Push("more"), "");
  StopMatcher tail({"##"});
  EXPECT_EQ(tail.Push("a#"), "a");
  EXPECT_EQ(tail.Flush(), "#");
  StopMatcher none({});
  EXPECT_EQ(none.Push("text"), "text");
}

TEST(ApiResponse, OpenAiChatBodyCarriesReasoningAndUsage) {
  GenerationRequest r;
  r.api = Api::kChat;
  auto f = ResponseFormatter::For(r, "id1", "m", 123, 10);
  EXPECT_EQ(f->Begin(), "");
  EXPECT_EQ(f->Text("think", true), "");
  EXPECT_EQ(f->Text("answer", false), "");
  GenerationResult g;
  g.prompt_tokens = 10;
  g.cached_tokens = 4;
  g.completion_tokens = 3;
  g.finish_reason = "stop";
  const json j = json::parse(f->End(g));
  EXPECT_EQ(j["object"], "chat.completion");
  EXPECT_EQ(j["choices"][0]["message"]["content"], "answer");
  EXPECT_EQ(j["choices"][0]["message"]["reasoning_content"], "think");
  EXPECT_EQ(j["choices"][0]["finish_reason"], "stop");
  EXPECT_EQ(j["usage"]["total_tokens"], 13);
  EXPECT_EQ(j["usage"]["prompt_tokens_details"]["cached_tokens"], 4);
}

TEST(ApiResponse, AnthropicStreamOpensAThinkingBlockThenATextBlock) {
  GenerationRequest r;
  r.api = Api::kMessages;
  r.stream = true;
  auto f = ResponseFormatter::For(r, "msg1", "m", 0, 5);
  std::string events = f->Begin();
  events += f->Text("hmm", true);
  events += f->Text("yes", false);
  events += f->Text("!", false);
  GenerationResult g;
  g.prompt_tokens = 5;
  g.completion_tokens = 3;
  g.finish_reason = "stop";
  g.stop_sequence = "END";
  events += f->End(g);
  std::vector<std::string> names;
  for (size_t at = 0; (at = events.find("event: ", at)) != std::string::npos; at += 7) {
    names.push_back(events.substr(at + 7, events.find('\n', at) - at - 7));
  }
  EXPECT_EQ(names, (std::vector<std::string>{"message_start", "content_block_start", "content_block_delta",
                                             "content_block_delta", "content_block_stop", "content_block_start",
                                             "content_block_delta", "content_block_delta", "content_block_stop",
                                             "message_delta", "message_stop"}));
  EXPECT_NE(events.find(R"("stop_reason":"stop_sequence","stop_sequence":"END")"), std::string::npos) << events;
  EXPECT_NE(events.find(R"("type":"signature_delta")"), std::string::npos);
  const json error = json::parse(ErrorBody(Api::kMessages, {404, "not_found_error", "no", ""}));
  EXPECT_EQ(error["type"], "error");
  EXPECT_EQ(error["error"]["type"], "not_found_error");
}

// A model of `preset` with the fallback byte vocabulary, written once per process.
std::string TestModel(const std::string& preset) {
  const std::string path = "/var/tmp/strata-server-" + std::to_string(::getpid()) + "-" + preset + ".gguf";
  if (!std::filesystem::exists(path)) {
    tools::MakeModelOptions o;
    o.preset = preset;
    o.output = path;
    o.tokenizer = "none";
    o.progress = false;
    EXPECT_TRUE(tools::MakeModel(o).ok());
  }
  return path;
}

class SlotReuse : public ::testing::TestWithParam<std::string> {};

// Three prompts in a row on one slot: the second extends what the slot holds after the
// first answer, the third diverges early. Each answer is exactly what a fresh slot gives.
// MLA (tiny) steps back to the common prefix; V4 (v4-tiny) reuses only an extension.
TEST_P(SlotReuse, ThePromptCacheNeverChangesAnAnswer) {
  const std::string path = TestModel(GetParam());
  auto model = engine::TieredModel::Open(path, engine::TierOptions{});
  ASSERT_TRUE(model.ok()) << model.status().ToString();
  auto tokenizer = engine::Tokenizer::FromGguf((*model)->model().file().gguf());
  ASSERT_TRUE(tokenizer.ok());
  auto tmpl = engine::ChatTemplateByName("deepseek3");
  ASSERT_TRUE(tmpl.ok());
  SlotOptions options;
  options.n_ctx = 256;
  options.batch = 7;
  options.session.threads = 2;
  Slot shared(**model, **tokenizer, *tmpl, options);
  GenerationRequest r;
  r.messages = {{"user", "Call me Ishmael."}};
  r.max_tokens = 6;
  r.sampling = {.temp = 0.0f};
  auto answer = [&](Slot& slot, const std::vector<int32_t>& prompt, GenerationResult* result) {
    std::string text;
    const Status s = slot.Generate(r, prompt,
                                   [&](std::string_view t, bool) {
                                     text += t;
                                     return true;
                                   },
                                   result);
    EXPECT_TRUE(s.ok()) << s.ToString();
    return text;
  };
  GenerationResult first;
  answer(shared, shared.PromptTokens(r), &first);
  std::vector<int32_t> extended = shared.cached();
  for (const int32_t t : (*tokenizer)->Encode(" Some years ago.", false, false)) extended.push_back(t);
  GenerationRequest other = r;
  other.messages = {{"user", "Call me Ahab."}};
  const std::vector<std::vector<int32_t>> prompts = {extended, shared.PromptTokens(other)};
  for (size_t i = 0; i < prompts.size(); ++i) {
    GenerationResult reused, fresh_result;
    const std::string got = answer(shared, prompts[i], &reused);
    const std::vector<int32_t> held = shared.cached();
    Slot fresh(**model, **tokenizer, *tmpl, options);
    EXPECT_EQ(got, answer(fresh, prompts[i], &fresh_result)) << "prompt " << i;
    EXPECT_EQ(held, fresh.cached()) << "prompt " << i << ": the slots hold different tokens";
    EXPECT_EQ(reused.completion_tokens, fresh_result.completion_tokens);
    EXPECT_EQ(fresh_result.cached_tokens, 0);
    const bool steps_back = GetParam() == "tiny";
    if (i == 0 || steps_back) {
      EXPECT_GT(reused.cached_tokens, 0) << "prompt " << i << " shares a prefix with the slot";
    } else {
      EXPECT_EQ(reused.cached_tokens, 0) << "V4 state cannot step back: the slot starts over";
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Presets, SlotReuse, ::testing::Values("tiny", "v4-tiny"));

TEST(Slot, APromptTheContextCannotHoldIsRefused) {
  auto model = engine::TieredModel::Open(TestModel("tiny"), engine::TierOptions{});
  ASSERT_TRUE(model.ok());
  auto tokenizer = engine::Tokenizer::FromGguf((*model)->model().file().gguf());
  ASSERT_TRUE(tokenizer.ok());
  SlotOptions options;
  options.n_ctx = 16;
  Slot slot(**model, **tokenizer, *engine::ChatTemplateByName("deepseek3"), options);
  GenerationRequest r;
  r.messages = {{"user", std::string(200, 'x')}};
  GenerationResult result;
  const Status s = slot.Generate(r, slot.PromptTokens(r), [](std::string_view, bool) { return true; }, &result);
  EXPECT_EQ(s.code(), StatusCode::kResourceExhausted);
  EXPECT_NE(s.message().find("-c/--ctx-size"), std::string::npos);
}

}  // namespace
}  // namespace strata::server

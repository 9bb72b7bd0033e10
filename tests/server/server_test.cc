// strata serve's pieces without a socket: the strict parsing of both APIs' requests
// (every error names its field), stop strings over streamed text, the response shapes,
// the scheduler's slots, whose prompt cache and company (several slots decoding in one
// batched step) must not change a bit of any answer.
#include <unistd.h>

#include <filesystem>
#include <set>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "engine/tiered_model.h"
#include "gtest/gtest.h"
#include "server/api_request.h"
#include "server/api_response.h"
#include "server/answer.h"
#include "server/prompt.h"
#include "server/scheduler.h"
#include "server/stop_matcher.h"
#include "tests/deepseek_v3_tokenizer.h"
#include "tests/server/test_model.h"
#include "tests/skip_or_fail.h"
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
      {Api::kChat, R"({"model": "m", "messages": [{"role": "user", "content": "x"}], "tools": [{"type": "function"}]})", "tools[0]", "must be"},
      {Api::kChat, R"({"model": "m", "messages": [{"role": "user", "content": "x"}], "stream_options": {"x": 1}})", "stream_options.x", "unknown"},
      {Api::kChat, R"({"model": "m", "messages": [{"role": "tool", "content": "x"}]})", "messages[0].tool_call_id", "tool_call_id"},
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

TEST(ApiRequest, ToolsAndToolTurnsOfBothApis) {
  ParsedRequest p = ParseRequest(Api::kChat, R"({"model": "m", "tool_choice": "auto",
    "tools": [{"type": "function", "function": {"name": "get_weather", "description": "d",
               "parameters": {"type": "object"}}}],
    "messages": [{"role": "user", "content": "weather?"},
                 {"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function",
                   "function": {"name": "get_weather", "arguments": "{\"city\": \"x\"}"}}]},
                 {"role": "tool", "tool_call_id": "c1", "content": "fog"}]})");
  ASSERT_FALSE(p.error) << p.error->message;
  ASSERT_EQ(p.request.tools.size(), 1u);
  EXPECT_EQ(p.request.tools[0].name, "get_weather");
  EXPECT_EQ(p.request.tools[0].parameters, R"({"type":"object"})");
  ASSERT_EQ(p.request.messages.size(), 3u);
  ASSERT_EQ(p.request.messages[1].tool_calls.size(), 1u);
  EXPECT_EQ(p.request.messages[1].tool_calls[0].arguments, R"({"city": "x"})");
  EXPECT_EQ(p.request.messages[2].role, "tool");
  EXPECT_EQ(p.request.messages[2].tool_call_id, "c1");
  EXPECT_EQ(p.request.messages[2].content, "fog");
  p = ParseRequest(Api::kChat, R"({"model": "m", "tool_choice": "none", "messages": [{"role": "user", "content": "x"}],
    "tools": [{"type": "function", "function": {"name": "f"}}]})");
  ASSERT_FALSE(p.error);
  EXPECT_TRUE(p.request.tools.empty()) << "tool_choice none keeps the tools from the model";
  const std::pair<const char*, const char*> bad[] = {
      {R"({"model": "m", "tool_choice": "required", "messages": [{"role": "user", "content": "x"}]})", "tool_choice"},
      {R"({"model": "m", "messages": [{"role": "user", "content": "x"}],
         "tools": [{"type": "function", "function": {"name": "a b"}}]})", "tools[0].name"},
      {R"({"model": "m", "messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": null,
         "tool_calls": [{"function": {"name": "f", "arguments": "[1]"}}]}]})", "messages[1].tool_calls[0].function.arguments"},
      {R"({"model": "m", "messages": [{"role": "user", "content": "x"}, {"role": "tool", "content": "r"}]})",
       "messages[1].tool_call_id"}};
  for (const auto& [body, param] : bad) {
    const ParsedRequest e = ParseRequest(Api::kChat, body);
    ASSERT_TRUE(e.error) << body;
    EXPECT_EQ(e.error->param, param) << e.error->message;
  }
  p = ParseRequest(Api::kMessages, R"({"model": "m", "max_tokens": 9,
    "tools": [{"name": "get_weather", "description": "d", "input_schema": {"type": "object"}}],
    "messages": [{"role": "user", "content": "weather?"},
                 {"role": "assistant", "content": [{"type": "text", "text": "Let me"},
                   {"type": "tool_use", "id": "t1", "name": "get_weather", "input": {"city": "x"}}]},
                 {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "fog"},
                   {"type": "text", "text": "and?"}]}]})");
  ASSERT_FALSE(p.error) << p.error->message;
  ASSERT_EQ(p.request.tools.size(), 1u);
  ASSERT_EQ(p.request.messages.size(), 4u);
  EXPECT_EQ(p.request.messages[1].content, "Let me");
  ASSERT_EQ(p.request.messages[1].tool_calls.size(), 1u);
  EXPECT_EQ(p.request.messages[1].tool_calls[0].arguments, R"({"city":"x"})");
  EXPECT_EQ(p.request.messages[2].role, "tool");
  EXPECT_EQ(p.request.messages[2].tool_call_id, "t1");
  EXPECT_EQ(p.request.messages[3].content, "and?");
  const ParsedRequest server_tool = ParseRequest(Api::kMessages, R"({"model": "m", "max_tokens": 9,
    "tools": [{"type": "web_search_20250305", "name": "web_search"}], "messages": [{"role": "user", "content": "x"}]})");
  ASSERT_TRUE(server_tool.error);
  EXPECT_EQ(server_tool.error->param, "tools.0.type");
}

TEST(ApiResponse, ToolCallsInEachApisShape) {
  GenerationRequest r;
  r.api = Api::kChat;
  const engine::ToolCall call{"", "get_weather", R"({"city": "x"})"};
  GenerationResult result;
  result.finish_reason = "tool_calls";
  result.tool_calls = {call};
  auto openai = ResponseFormatter::For(r, "id1", "m", 0, 5);
  openai->Text("Let me", false);
  openai->ToolCall(call, 0);
  json j = json::parse(openai->End(result));
  EXPECT_EQ(j["choices"][0]["finish_reason"], "tool_calls");
  EXPECT_EQ(j["choices"][0]["message"]["content"], "Let me");
  EXPECT_EQ(j["choices"][0]["message"]["tool_calls"][0]["id"], "call_id1_0");
  EXPECT_EQ(j["choices"][0]["message"]["tool_calls"][0]["function"]["name"], "get_weather");
  EXPECT_EQ(j["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"], R"({"city": "x"})");
  r.stream = true;
  auto stream = ResponseFormatter::For(r, "id1", "m", 0, 5);
  const std::string chunk = stream->ToolCall(call, 0);
  j = json::parse(chunk.substr(6));  // "data: {...}\n\n"
  EXPECT_EQ(j["choices"][0]["delta"]["tool_calls"][0]["index"], 0);
  EXPECT_EQ(j["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"], R"({"city": "x"})");
  EXPECT_NE(stream->End(result).find(R"("finish_reason":"tool_calls")"), std::string::npos);

  r.api = Api::kMessages;
  r.stream = false;
  auto anthropic = ResponseFormatter::For(r, "msg1", "m", 0, 5);
  anthropic->Text("Let me", false);
  anthropic->ToolCall(call, 0);
  j = json::parse(anthropic->End(result));
  EXPECT_EQ(j["stop_reason"], "tool_use");
  ASSERT_EQ(j["content"].size(), 2u);
  EXPECT_EQ(j["content"][1]["type"], "tool_use");
  EXPECT_EQ(j["content"][1]["id"], "toolu_msg1_0");
  EXPECT_EQ(j["content"][1]["input"]["city"], "x");
  r.stream = true;
  auto events = ResponseFormatter::For(r, "msg1", "m", 0, 5);
  std::string all = events->Begin() + events->Text("Let me", false) + events->ToolCall(call, 0) +
                    events->End(result);
  EXPECT_NE(all.find(R"("content_block":{"type":"tool_use","id":"toolu_msg1_0","name":"get_weather","input":{}})"),
            std::string::npos) << all;
  EXPECT_NE(all.find(R"("type":"input_json_delta","partial_json":"{\"city\":\"x\"}")"), std::string::npos) << all;
  EXPECT_NE(all.find(R"("stop_reason":"tool_use")"), std::string::npos) << all;
}

// The answer side, without a model: tokens pushed as the engine loop would push them,
// in the DeepSeek vocabulary: the text before the calls is the answer, each call is
// handed over as it completes, and the answer ends with finish_reason tool_calls.
TEST(StreamAnswer, TakesToolCallsOutOfTheTokens) {
  const std::unique_ptr<engine::Tokenizer> tokenizer = strata::testing::LoadDeepseekV3Tokenizer();
  if (!tokenizer) STRATA_SKIP_OR_FAIL("DeepSeek-V3 tokenizer.json not cached (run scripts/setup.sh)");
  const std::vector<int32_t> out = tokenizer->Encode(
      "I will check.<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>get_weather<｜tool▁sep｜>"
      "{\"city\": \"x\"}<｜tool▁call▁end｜><｜tool▁calls▁end｜>",
      false, true);
  GenerationRequest r;
  auto g = std::make_shared<Generation>(std::vector<int32_t>{1}, r.sampling, -1, false);
  for (const int32_t t : out) g->Push(t);
  Generation::Outcome o;
  o.end = Generation::End::kEos;
  g->Finish(o);
  const engine::ToolMarkers markers = engine::ToolMarkers::Of(*tokenizer);
  std::string text;
  std::vector<std::string> handed;
  GenerationResult result;
  ASSERT_TRUE(StreamAnswer(
                  *g, r, *tokenizer, false,
                  [&](std::string_view t, bool) {
                    text += t;
                    return true;
                  },
                  [] { return true; }, &result, &markers,
                  [&](const engine::ToolCall& c, int index) {
                    handed.push_back(std::to_string(index) + " " + c.name + " " + c.arguments);
                    return true;
                  })
                  .ok());
  EXPECT_EQ(text, "I will check.");
  EXPECT_EQ(handed, std::vector<std::string>{"0 get_weather {\"city\": \"x\"}"});
  EXPECT_EQ(result.finish_reason, "tool_calls");
  ASSERT_EQ(result.tool_calls.size(), 1u);
}

struct Served {
  std::unique_ptr<engine::TieredModel> model;
  std::unique_ptr<engine::Tokenizer> tokenizer;
  std::unique_ptr<Prompter> prompter;
};

Served Open(const std::string& preset) {
  Served s;
  auto model = engine::TieredModel::Open(testing::ServerTestModel(preset), engine::TierOptions{});
  EXPECT_TRUE(model.ok()) << model.status().ToString();
  s.model = std::move(model).value();
  auto tokenizer = engine::Tokenizer::FromGguf(s.model->model().file().gguf());
  EXPECT_TRUE(tokenizer.ok());
  s.tokenizer = std::move(tokenizer).value();
  s.prompter = std::make_unique<Prompter>(*s.tokenizer, *engine::ChatTemplateByName("deepseek3"),
                                          true);
  return s;
}

SchedulerOptions Slots(uint32_t slots, const engine::Tokenizer& tokenizer) {
  SchedulerOptions o;
  o.slots = slots;
  o.n_ctx = 256;
  o.batch = 7;
  o.session.threads = 2;
  o.eos = tokenizer.eos();
  return o;
}

std::shared_ptr<Generation> Start(Scheduler& scheduler, const GenerationRequest& r,
                                  std::vector<int32_t> prompt) {
  auto g = std::make_shared<Generation>(std::move(prompt), r.sampling, r.max_tokens, r.ignore_eos);
  const Status s = scheduler.Submit(g);
  EXPECT_TRUE(s.ok()) << s.ToString();
  return g;
}

std::string Finish(Generation& g, const Served& served, const GenerationRequest& r,
                   GenerationResult* result) {
  std::string text;
  const Status s = StreamAnswer(
      g, r, *served.tokenizer, served.prompter->StartsThinking(r),
      [&](std::string_view t, bool) {
        text += t;
        return true;
      },
      [] { return true; }, result);
  EXPECT_TRUE(s.ok()) << s.ToString();
  return text;
}

std::string Answer(Scheduler& scheduler, const Served& served, const GenerationRequest& r,
                   const std::vector<int32_t>& prompt, GenerationResult* result) {
  auto g = Start(scheduler, r, prompt);
  return Finish(*g, served, r, result);
}

class SlotReuse : public ::testing::TestWithParam<std::string> {};

// Three prompts in a row on one slot: the second extends what the slot holds after the
// first answer, the third diverges early. Each answer is exactly what a fresh slot gives.
// MLA (tiny) steps back to the common prefix; V4 (v4-tiny) reuses only an extension.
TEST_P(SlotReuse, ThePromptCacheNeverChangesAnAnswer) {
  const Served served = Open(GetParam());
  Scheduler shared(*served.model, Slots(1, *served.tokenizer));
  GenerationRequest r;
  r.messages = {{"user", "Call me Ishmael."}};
  r.max_tokens = 6;
  r.sampling = {.temp = 0.0f};
  GenerationResult first;
  Answer(shared, served, r, served.prompter->Tokens(r), &first);
  std::vector<int32_t> extended = shared.Held(0);
  for (const int32_t t : served.tokenizer->Encode(" Some years ago.", false, false)) {
    extended.push_back(t);
  }
  GenerationRequest other = r;
  other.messages = {{"user", "Call me Ahab."}};
  const std::vector<std::vector<int32_t>> prompts = {extended, served.prompter->Tokens(other)};
  for (size_t i = 0; i < prompts.size(); ++i) {
    GenerationResult reused, fresh_result;
    const std::string got = Answer(shared, served, r, prompts[i], &reused);
    const std::vector<int32_t> held = shared.Held(0);
    Scheduler fresh(*served.model, Slots(1, *served.tokenizer));
    EXPECT_EQ(got, Answer(fresh, served, r, prompts[i], &fresh_result)) << "prompt " << i;
    EXPECT_EQ(held, fresh.Held(0)) << "prompt " << i << ": the slots hold different tokens";
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

class SchedulerSlots : public ::testing::TestWithParam<std::string> {};

// Seven requests at once on three slots (four wait in the queue), sampled with their
// own seeds and lengths: each answer is exactly what it is alone on a one-slot
// scheduler, and the slots did decode together (steps of more than one token).
TEST_P(SchedulerSlots, ConcurrentAnswersEqualTheAnswersAlone) {
  const Served served = Open(GetParam());
  std::vector<GenerationRequest> requests;
  const char* texts[] = {"Call me Ishmael.", "Some years ago", "never mind how long", "precisely",
                         "having little or no money", "in my purse", "and nothing particular"};
  for (int i = 0; i < 7; ++i) {
    GenerationRequest r;
    r.messages = {{"user", texts[i]}};
    r.max_tokens = 5 + 3 * i;
    r.ignore_eos = true;
    r.sampling.temp = i % 2 ? 0.8f : 0.0f;
    r.sampling.seed = 100 + i;
    requests.push_back(r);
  }
  std::vector<std::string> alone;
  {
    Scheduler one(*served.model, Slots(1, *served.tokenizer));
    for (const GenerationRequest& r : requests) {
      GenerationResult result;
      alone.push_back(Answer(one, served, r, served.prompter->Tokens(r), &result));
      EXPECT_EQ(result.completion_tokens, r.max_tokens);
    }
  }
  Scheduler three(*served.model, Slots(3, *served.tokenizer));
  std::vector<std::shared_ptr<Generation>> running;
  for (const GenerationRequest& r : requests) {
    running.push_back(Start(three, r, served.prompter->Tokens(r)));
  }
  std::set<uint32_t> slots_used;
  for (size_t i = 0; i < requests.size(); ++i) {
    GenerationResult result;
    EXPECT_EQ(Finish(*running[i], served, requests[i], &result), alone[i]) << "request " << i;
    EXPECT_EQ(result.completion_tokens, requests[i].max_tokens);
    slots_used.insert(result.slot);
  }
  EXPECT_EQ(slots_used.size(), 3u);
  const SchedulerStats stats = three.stats();
  EXPECT_GT(stats.step_tokens, stats.steps) << "no step decoded two slots at once";
  EXPECT_EQ(stats.busy, 0u);
  EXPECT_EQ(stats.waiting, 0u);
}

INSTANTIATE_TEST_SUITE_P(Presets, SchedulerSlots, ::testing::Values("tiny", "v4-tiny"));

TEST(Scheduler, AFullQueueIsRefusedAndACancelledRequestLeavesIt) {
  const Served served = Open("tiny");
  SchedulerOptions options = Slots(1, *served.tokenizer);
  options.max_queue = 1;
  Scheduler scheduler(*served.model, options);
  GenerationRequest r;
  r.messages = {{"user", "Call me Ishmael."}};
  r.ignore_eos = true;  // runs until the context is full, unless cancelled
  r.sampling = {.temp = 0.0f};
  const std::vector<int32_t> prompt = served.prompter->Tokens(r);
  auto running = Start(scheduler, r, prompt);
  std::vector<int32_t> tokens;
  ASSERT_TRUE(running->Take(&tokens, std::chrono::seconds(30)));  // it holds the slot
  auto queued = Start(scheduler, r, prompt);
  auto third = std::make_shared<Generation>(prompt, r.sampling, -1, true);
  const Status full = scheduler.Submit(third);
  EXPECT_EQ(full.code(), StatusCode::kResourceExhausted);
  EXPECT_NE(full.message().find("--max-queue"), std::string::npos);
  queued->Cancel();  // a client that left while waiting
  running->Cancel();
  while (queued->Take(&tokens, std::chrono::milliseconds(100))) {
  }
  while (running->Take(&tokens, std::chrono::milliseconds(100))) {
  }
  EXPECT_EQ(queued->outcome().end, Generation::End::kCancelled);
  EXPECT_EQ(running->outcome().end, Generation::End::kCancelled);
  // The slot is free again.
  r.max_tokens = 3;
  GenerationResult result;
  Answer(scheduler, served, r, prompt, &result);
  EXPECT_EQ(result.completion_tokens, 3);
  EXPECT_EQ(result.finish_reason, "length");
}

TEST(Scheduler, APromptTheContextCannotHoldIsRefused) {
  const Served served = Open("tiny");
  SchedulerOptions options = Slots(1, *served.tokenizer);
  options.n_ctx = 16;
  Scheduler scheduler(*served.model, options);
  GenerationRequest r;
  r.messages = {{"user", std::string(200, 'x')}};
  auto g = std::make_shared<Generation>(served.prompter->Tokens(r), r.sampling, -1, false);
  const Status s = scheduler.Submit(g);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("-c/--ctx-size"), std::string::npos);
}

::testing::Environment* const kCleanup =
    ::testing::AddGlobalTestEnvironment(new testing::ServerTestModelCleanup);

}  // namespace
}  // namespace strata::server

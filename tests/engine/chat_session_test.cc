// ChatSession: a second turn prefills only its new tokens and its logits equal a fresh
// run on the whole conversation (KV reuse is exact); a conversation restored with Load
// continues the same way; the context policy refuses a turn that does not fit; and the
// think splitter and templates produce what the DeepSeek formats specify.
#include "engine/chat_session.h"

#include <gtest/gtest.h>

#include <cstring>

#include "engine/tiered_model.h"
#include "tests/tiers/test_model.h"

namespace strata::engine {
namespace {

struct Fixture {
  std::unique_ptr<TieredModel> model;
  std::unique_ptr<Tokenizer> tokenizer;
};

Fixture Open(uint64_t budget, const std::string& preset = "tiny") {
  Fixture f;
  TierOptions o;
  o.use_profile = false;
  o.ram_budget = budget;
  auto tm = TieredModel::Open(testing::TierTestModel(preset), o);
  EXPECT_TRUE(tm.ok()) << tm.status().ToString();
  f.model = std::move(tm).value();
  auto tok = Tokenizer::FromGguf(f.model->model().file().gguf());
  EXPECT_TRUE(tok.ok());
  f.tokenizer = std::move(tok).value();
  return f;
}

ChatOptions Greedy(int32_t n_predict) {
  ChatOptions o;
  o.n_ctx = 512;
  o.batch = 16;
  o.sampling.temp = 0;
  o.n_predict = n_predict;
  o.session.threads = 2;
  return o;
}

std::vector<float> FreshLogits(TieredModel& model, const std::vector<int32_t>& tokens) {
  Session s(model.model(), 512, storage::GgmlType::kF16, {.threads = 1});
  std::vector<float> logits;
  EXPECT_TRUE(s.Eval(tokens, &logits, 7).ok());
  return logits;
}

struct TurnCase {
  std::string preset, chat_template;
};

class ChatTurns : public ::testing::TestWithParam<TurnCase> {};

TEST_P(ChatTurns, ASecondTurnPrefillsOnlyNewTokensAndMatchesAFreshRunBitForBit) {
  // All in RAM and tiered (a budget that forces expert reads). On v4-tiny the second
  // turn continues V4's window, compressors and entries from the first.
  const uint64_t tiered = GetParam().preset == "v4-tiny" ? uint64_t{5} << 20 : uint64_t{3} << 20;
  for (uint64_t budget : {uint64_t{0}, tiered}) {
    Fixture f = Open(budget, GetParam().preset);
    ChatSession chat(*f.model, *f.tokenizer, *ChatTemplateByName(GetParam().chat_template),
                     Greedy(12));
    chat.set_system("You are terse.");
    TurnStats s1, s2;
    ASSERT_TRUE(chat.Turn(
                        "Hello there", [](std::string_view, bool) {}, &s1)
                    .ok());
    const size_t after_first = chat.fed().size();
    ASSERT_TRUE(chat.Turn(
                        "And again?", [](std::string_view, bool) {}, &s2)
                    .ok());
    EXPECT_EQ(s1.generated, 12);
    // Turn 2 fed its own tokens (plus the last sampled one and the EOS closing turn 1),
    // not the conversation again.
    EXPECT_EQ(after_first, static_cast<size_t>(s1.prompt_tokens) + 11);  // last one pending
    EXPECT_LT(s2.prompt_tokens, s1.prompt_tokens);
    // Everything fed up to the end of turn 2's prefill, in one fresh run.
    const std::vector<int32_t> prefix(
        chat.fed().begin(), chat.fed().begin() + static_cast<long>(after_first) + s2.prompt_tokens);
    const std::vector<float> fresh = FreshLogits(*f.model, prefix);
    ASSERT_EQ(fresh.size(), chat.prefill_logits().size());
    EXPECT_EQ(0,
              std::memcmp(fresh.data(), chat.prefill_logits().data(), fresh.size() * sizeof(float)))
        << "budget " << budget;
    EXPECT_EQ(chat.messages().size(), 4u);
  }
}

INSTANTIATE_TEST_SUITE_P(Templates, ChatTurns,
                         ::testing::Values(TurnCase{"tiny", "deepseek2"},
                                           TurnCase{"tiny", "deepseek3"},
                                           TurnCase{"tiny", "deepseek-r1"},
                                           TurnCase{"tiny", "deepseek4"},
                                           TurnCase{"v4-tiny", "deepseek4"}),
                         [](const auto& p) {
                           std::string n = p.param.preset + "_" + p.param.chat_template;
                           std::erase_if(n, [](char c) { return !std::isalnum(c) && c != '_'; });
                           return n;
                         });

TEST(ChatSession, ALoadedConversationContinuesLikeTheLiveOne) {
  Fixture f = Open(0);
  const ChatTemplate t = *ChatTemplateByName("deepseek3");
  ChatSession live(*f.model, *f.tokenizer, t, Greedy(6));
  TurnStats s;
  ASSERT_TRUE(live.Turn(
                      "one", [](std::string_view, bool) {}, &s)
                  .ok());
  ChatSession loaded(*f.model, *f.tokenizer, t, Greedy(6));
  ASSERT_TRUE(loaded.Load("", live.messages()).ok());
  EXPECT_EQ(loaded.messages().size(), 2u);
  std::string b;
  ASSERT_TRUE(loaded
                  .Turn(
                      "two", [&](std::string_view x, bool) { b += x; }, &s)
                  .ok());
  // The loaded conversation is in the KV cache: the next turn only adds its own tokens.
  EXPECT_EQ(loaded.messages().size(), 4u);
  EXPECT_FALSE(b.empty());
  const std::vector<int32_t> prefix(loaded.fed().begin(), loaded.fed().end() - 5);
  const std::vector<float> fresh = FreshLogits(*f.model, prefix);
  EXPECT_EQ(
      0, std::memcmp(fresh.data(), loaded.prefill_logits().data(), fresh.size() * sizeof(float)));
}

TEST(ChatSession, ATurnThatDoesNotFitIsRefusedAndTheSessionGoesOn) {
  Fixture f = Open(0);
  ChatOptions o = Greedy(4);
  o.n_ctx = 64;
  ChatSession chat(*f.model, *f.tokenizer, *ChatTemplateByName("deepseek3"), o);
  TurnStats s;
  const Status big = chat.Turn(
      std::string(500, 'x'), [](std::string_view, bool) {}, &s);
  EXPECT_EQ(big.code(), StatusCode::kResourceExhausted);
  EXPECT_NE(big.message().find("/reset"), std::string::npos) << big.message();
  EXPECT_EQ(chat.n_past(), 0);
  ASSERT_TRUE(chat.Turn(
                      "hi", [](std::string_view, bool) {}, &s)
                  .ok());
  // An answer that fills the context stops there.
  chat.options().n_predict = -1;
  chat.options().ignore_eos = true;
  ASSERT_TRUE(chat.Turn(
                      "more", [](std::string_view, bool) {}, &s)
                  .ok());
  EXPECT_TRUE(s.context_full);
  EXPECT_LE(chat.n_past(), 64);
}

TEST(ThinkSplitter, SeparatesReasoningEvenWhenTagsArriveInPieces) {
  std::string reasoning, answer;
  auto out = [&](std::string_view t, bool r) { (r ? reasoning : answer) += t; };
  ThinkSplitter s(true);
  for (std::string_view piece : {"Let me ", "think.</th", "ink>\nThe answer", " is 4. <", "b>"}) {
    s.Push(piece, out);
  }
  s.Flush(out);
  EXPECT_EQ(reasoning, "Let me think.");
  EXPECT_EQ(answer, "The answer is 4. <b>");
  ThinkSplitter t(false);
  reasoning.clear();
  answer.clear();
  t.Push("Hi<think>hmm</think>ok", out);
  t.Flush(out);
  EXPECT_EQ(reasoning, "hmm");
  EXPECT_EQ(answer, "Hiok");
}

TEST(ChatTemplate, FormatsFollowTheDeepSeekTemplates) {
  auto join = [](const std::vector<TextSegment>& segs) {
    std::string s;
    for (const auto& x : segs) s += x.text;
    return s;
  };
  EXPECT_EQ(join(ChatTemplateByName("deepseek2")->User("hi", true)), "User: hi\n\nAssistant:");
  EXPECT_EQ(join(ChatTemplateByName("deepseek3")->User("hi", true)), "<｜User｜>hi<｜Assistant｜>");
  EXPECT_EQ(join(ChatTemplateByName("deepseek-r1")->User("hi", false)),
            "<｜User｜>hi<｜Assistant｜><think>\n");
  EXPECT_EQ(join(ChatTemplateByName("deepseek4")->User("hi", true)),
            "<｜User｜>hi<｜Assistant｜><think>");
  EXPECT_EQ(join(ChatTemplateByName("deepseek4")->User("hi", false)),
            "<｜User｜>hi<｜Assistant｜></think>");
  EXPECT_EQ(join(ChatTemplateByName("deepseek3.1")->User("hi", true)),
            "<｜User｜>hi<｜Assistant｜><think>");
  EXPECT_EQ(join(ChatTemplateByName("deepseek3.1")->User("hi", false)),
            "<｜User｜>hi<｜Assistant｜><think></think>");
  // Past answers: reasoning dropped where the template drops it.
  EXPECT_EQ(join(ChatTemplateByName("deepseek-r1")->PastAnswer("<think>a</think>b</think>c")),
            "<｜Assistant｜>c");
  EXPECT_EQ(join(ChatTemplateByName("deepseek3.1")->PastAnswer("<think>a</think>b</think>c")),
            "<｜Assistant｜><think></think>b</think>c");
  EXPECT_EQ(join(ChatTemplateByName("deepseek4")->PastAnswer("plain")), "<｜Assistant｜></think>plain");
  EXPECT_EQ(join(ChatTemplateByName("deepseek2")->PastAnswer("x")), "Assistant: x");
  // The user's text is never parsed for control tokens.
  const auto segs = ChatTemplateByName("deepseek3")->User("<｜User｜>", true);
  ASSERT_EQ(segs.size(), 3u);
  EXPECT_TRUE(segs[0].special);
  EXPECT_FALSE(segs[1].special);
  EXPECT_FALSE(ChatTemplateByName("chatml").ok());
}

}  // namespace
}  // namespace strata::engine

static ::testing::Environment* const kCleanup =
    ::testing::AddGlobalTestEnvironment(new strata::testing::TierTestModelCleanup);

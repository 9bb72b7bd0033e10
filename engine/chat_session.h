// A conversation kept in the KV cache: each turn prefills only its new tokens (the
// user's message in the chat template, plus whatever closed the previous answer), then
// samples the answer token by token, streaming its text. Answers of thinking models are
// split into reasoning (between <think> and </think>) and the answer proper.
//
// Context policy: a turn that does not fit in what is left of the context is refused
// with a message suggesting /reset, and an answer that fills the context stops there
// (documented in README). Ctrl-C (util/cancel.h) stops an answer between tokens; the
// tokens sampled so far stay in the conversation. Thread-compatible.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "engine/chat_template.h"
#include "engine/session.h"
#include "engine/sampler.h"
#include "engine/tokenizer/tokenizer.h"
#include "engine/tool_calls.h"
#include "tiers/expert_cache.h"
#include "util/status.h"

namespace strata::engine {

class TieredModel;

struct ChatMessage {
  std::string role;     // "user", "assistant" or "tool"
  std::string content;  // assistant: everything generated, reasoning tags included
  std::vector<ToolCall> tool_calls = {};  // assistant: the tools it called
  std::string tool_call_id = {};          // tool: the call this is the result of
};

struct ChatOptions {
  uint32_t n_ctx = 4096;
  storage::GgmlType kv_type = storage::GgmlType::kF16;
  int64_t batch = 512;
  SessionOptions session;
  SamplerOptions sampling;
  int32_t n_predict = -1;   // per answer; -1: until EOS or the context is full
  bool thinking = true;     // hybrid templates: thinking mode
  bool ignore_eos = false;  // keep generating past EOS (benchmarks, tests)
};

struct TurnStats {
  int32_t prompt_tokens = 0;  // prefilled for this turn
  int32_t generated = 0;
  double prefill_s = 0;  // time to first token
  double decode_s = 0;
  bool cancelled = false;
  bool context_full = false;
  tiers::CacheStats tiers;  // during this turn's decode
};

// A whole conversation's tokens as the template lays it out: BOS, the system prompt,
// each user turn, each past answer as the template renders history (ChatTemplate::
// PastAnswer), and the prompt for the next answer when the last message is the
// user's. `continue_last`: a final assistant message is the start of the answer to
// continue (after the answer prompt, not closed), not a past answer. Tools, tool calls
// and tool results are rendered where the template has a tool format
// (ChatTemplate::SupportsTools): the tools described after the system prompt, a call
// and each result as the format writes them, and no answer prompt after a result (the
// model answers right after it).
std::vector<int32_t> EncodeConversation(const Tokenizer& tokenizer, const ChatTemplate& chat_template,
                                        const std::string& system,
                                        const std::vector<ChatMessage>& messages, bool thinking,
                                        bool continue_last = false,
                                        const std::vector<ToolDefinition>& tools = {});

class ChatSession {
 public:
  // Called with each piece of text as it becomes printable; `reasoning` marks text
  // inside the model's <think> block (tags removed).
  using OnText = std::function<void(std::string_view text, bool reasoning)>;

  ChatSession(TieredModel& model, const Tokenizer& tokenizer, ChatTemplate chat_template,
              ChatOptions options);

  // Starts over: an empty context with only BOS and the system prompt pending.
  void Reset();
  void set_system(std::string system) { system_ = std::move(system); }
  const std::string& system() const { return system_; }

  // One user message and the model's answer.
  Status Turn(const std::string& user, const OnText& on_text, TurnStats* stats);

  // Replaces the conversation with `messages` (alternating user/assistant, ending with
  // either) and prefills it, so the next Turn continues it.
  Status Load(std::string system, std::vector<ChatMessage> messages);

  const std::vector<ChatMessage>& messages() const { return messages_; }
  ChatOptions& options() { return options_; }
  const ChatTemplate& chat_template() const { return template_; }
  int64_t n_past() const { return session_.n_past(); }
  uint32_t n_ctx() const { return session_.n_ctx(); }
  // Every token fed to the model so far, in order, and the logits after the latest
  // prefill (tests compare them with a fresh run).
  const std::vector<int32_t>& fed() const { return fed_; }
  const std::vector<float>& prefill_logits() const { return prefill_logits_; }

 private:
  std::vector<int32_t> Encode(const std::vector<TextSegment>& segments, bool bos) const;
  Status Feed(const std::vector<int32_t>& tokens, std::vector<float>* logits);

  TieredModel& model_;
  const Tokenizer& tokenizer_;
  ChatTemplate template_;
  ChatOptions options_;
  Session session_;
  std::string system_;
  std::vector<ChatMessage> messages_;
  std::vector<int32_t> fed_;
  std::vector<int32_t> pending_;  // sampled but not yet fed (closes the last answer)
  std::vector<float> prefill_logits_;
  bool started_ = false;  // BOS and system fed
};

// Splits a stream of text into reasoning and answer at <think> / </think>, holding back
// a possible partial tag. Thread-compatible.
class ThinkSplitter {
 public:
  explicit ThinkSplitter(bool starts_inside) : inside_(starts_inside) {}
  void Push(std::string_view text, const ChatSession::OnText& out);
  void Flush(const ChatSession::OnText& out);

 private:
  bool inside_;
  std::string held_;
};

}  // namespace strata::engine

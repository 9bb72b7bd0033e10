// The DeepSeek family's chat formats, as token segments: markup is encoded with control
// tokens recognised, message text without (so a user typing "<｜User｜>" cannot forge
// a turn). Formats (the models' published templates; docs/CHAT_TEMPLATES.md):
//   deepseek2    V2/V2.5/V2-Lite chat: "User: {u}\n\nAssistant: {a}<eos>", prompt "Assistant:"
//   deepseek3    V3: "<｜User｜>{u}<｜Assistant｜>{a}<｜end▁of▁sentence｜>"
//   deepseek-r1  R1: as deepseek3, every answer starts inside "<think>\n"; a past answer
//                keeps only what follows its reasoning
//   deepseek3.1  V3.1/V3.2: as deepseek3, the assistant prompt followed by "<think>"
//                (thinking) or "<think></think>" (non-thinking); a past answer is
//                "<think></think>" and what follows its reasoning
//   deepseek4    V4: as deepseek3.1, but non-thinking and past answers open with "</think>"
// The system prompt comes right after BOS (deepseek2 adds "\n\n"). Pure; thread-safe.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "util/status.h"

namespace strata::storage {
class GgufFile;
}

namespace strata::engine {

struct ToolCall;

enum class ChatFormat { kDeepseek2, kDeepseek3, kDeepseekR1, kDeepseek31, kDeepseek4 };

struct TextSegment {
  std::string text;
  bool special = false;  // markup: control tokens in it are recognised
};

struct ChatTemplate {
  ChatFormat format = ChatFormat::kDeepseek3;
  std::string name;

  // Whether the model writes a reasoning block before its answer in this mode.
  bool Thinks(bool thinking_wanted) const;
  bool CanSwitchThinking() const {
    return format == ChatFormat::kDeepseek31 || format == ChatFormat::kDeepseek4;
  }
  // Right after BOS: the system prompt (empty when there is none).
  std::vector<TextSegment> System(const std::string& system) const;
  // A user turn and the assistant prompt that follows it.
  std::vector<TextSegment> User(const std::string& text, bool thinking) const;
  // A user turn alone, and the prompt that opens the answer to generate.
  std::vector<TextSegment> UserText(const std::string& text) const;
  std::vector<TextSegment> AssistantPrompt(bool thinking) const;
  // A finished answer in the history (after its user turn), as the format renders it,
  // reasoning dropped where the format drops it; EOS closes it.
  std::vector<TextSegment> PastAnswer(const std::string& content) const;

  // Tool calls (engine/tool_calls.h): the V3.1 format, on deepseek3.1.
  bool SupportsTools() const { return format == ChatFormat::kDeepseek31; }
  // An answer that called tools: `after_user` when it directly follows a user turn
  // (the answer prompt opens it). EOS closes it.
  std::vector<TextSegment> ToolCallsAnswer(const std::string& content,
                                           const std::vector<struct ToolCall>& calls,
                                           bool after_user) const;
  std::vector<TextSegment> ToolResult(const std::string& content) const;
  // What closes an assistant turn (the EOS token's text), for a cut-off answer.
  std::vector<TextSegment> AssistantEnd(const std::string& eos_text) const;
};

// Names accepted by --chat-template.
std::vector<std::string> ChatTemplateNames();
Result<ChatTemplate> ChatTemplateByName(std::string_view name);
// From tokenizer.chat_template when present, else from the vocabulary (a "<｜User｜>"
// token means the V3 format), else deepseek2. `why` says which rule decided.
ChatTemplate DetectChatTemplate(const storage::GgufFile& file, bool vocab_has_user_token,
                                std::string* why);

}  // namespace strata::engine

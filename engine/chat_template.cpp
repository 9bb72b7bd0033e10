#include "engine/chat_template.h"

#include "engine/tool_calls.h"
#include "storage/gguf.h"

namespace strata::engine {
namespace {

constexpr std::string_view kUser = "<｜User｜>";
constexpr std::string_view kAssistant = "<｜Assistant｜>";

// What follows the reasoning of an answer: after the first "</think>" (V3.1's
// template) or the last (R1's); the whole answer when it has none.
std::string AfterReasoning(const std::string& content, bool last) {
  const size_t at = last ? content.rfind("</think>") : content.find("</think>");
  return at == std::string::npos ? content : content.substr(at + 8);
}

}  // namespace

bool ChatTemplate::Thinks(bool thinking_wanted) const {
  switch (format) {
    case ChatFormat::kDeepseekR1:
      return true;
    case ChatFormat::kDeepseek31:
    case ChatFormat::kDeepseek4:
      return thinking_wanted;
    default:
      return false;
  }
}

std::vector<TextSegment> ChatTemplate::System(const std::string& system) const {
  if (system.empty()) return {};
  if (format == ChatFormat::kDeepseek2) return {{system, false}, {"\n\n", true}};
  return {{system, false}};
}

std::vector<TextSegment> ChatTemplate::UserText(const std::string& text) const {
  if (format == ChatFormat::kDeepseek2) return {{"User: ", true}, {text, false}, {"\n\n", true}};
  return {{std::string(kUser), true}, {text, false}};
}

std::vector<TextSegment> ChatTemplate::AssistantPrompt(bool thinking) const {
  switch (format) {
    case ChatFormat::kDeepseek2:
      return {{"Assistant:", true}};
    case ChatFormat::kDeepseek3:
      return {{std::string(kAssistant), true}};
    case ChatFormat::kDeepseekR1:
      return {{std::string(kAssistant) + "<think>\n", true}};
    case ChatFormat::kDeepseek31:
      return {{std::string(kAssistant) + (thinking ? "<think>" : "<think></think>"), true}};
    case ChatFormat::kDeepseek4:
      return {{std::string(kAssistant) + (thinking ? "<think>" : "</think>"), true}};
  }
  return {};
}

std::vector<TextSegment> ChatTemplate::User(const std::string& text, bool thinking) const {
  std::vector<TextSegment> out = UserText(text);
  for (TextSegment& s : AssistantPrompt(thinking)) out.push_back(std::move(s));
  // deepseek2's markup after the text is one piece: "\n\nAssistant:".
  if (format == ChatFormat::kDeepseek2) {
    out[2].text += out[3].text;
    out.pop_back();
  }
  return out;
}

std::vector<TextSegment> ChatTemplate::PastAnswer(const std::string& content) const {
  switch (format) {
    case ChatFormat::kDeepseek2:
      return {{"Assistant: ", true}, {content, false}};
    case ChatFormat::kDeepseek3:
      return {{std::string(kAssistant), true}, {content, false}};
    case ChatFormat::kDeepseekR1:
      return {{std::string(kAssistant), true}, {AfterReasoning(content, true), false}};
    case ChatFormat::kDeepseek31:
      return {{std::string(kAssistant) + "<think></think>", true},
              {AfterReasoning(content, false), false}};
    case ChatFormat::kDeepseek4:
      return {{std::string(kAssistant) + "</think>", true},
              {AfterReasoning(content, false), false}};
  }
  return {};
}

std::vector<TextSegment> ChatTemplate::ToolCallsAnswer(const std::string& content,
                                                       const std::vector<ToolCall>& calls,
                                                       bool after_user) const {
  std::vector<TextSegment> out;
  if (after_user) out.push_back({std::string(kAssistant) + "<think></think>", true});
  if (!content.empty()) out.push_back({AfterReasoning(content, false), false});
  out.push_back({"<｜tool▁calls▁begin｜>", true});
  for (const ToolCall& c : calls) {
    out.push_back({"<｜tool▁call▁begin｜>", true});
    out.push_back({c.name, false});
    out.push_back({"<｜tool▁sep｜>", true});
    out.push_back({c.arguments, false});
    out.push_back({"<｜tool▁call▁end｜>", true});
  }
  out.push_back({"<｜tool▁calls▁end｜>", true});
  return out;
}

std::vector<TextSegment> ChatTemplate::ToolResult(const std::string& content) const {
  return {{"<｜tool▁output▁begin｜>", true}, {content, false}, {"<｜tool▁output▁end｜>", true}};
}

std::vector<TextSegment> ChatTemplate::AssistantEnd(const std::string& eos_text) const {
  return {{eos_text, true}};
}

std::vector<std::string> ChatTemplateNames() {
  return {"deepseek2", "deepseek3", "deepseek-r1", "deepseek3.1", "deepseek4"};
}

Result<ChatTemplate> ChatTemplateByName(std::string_view name) {
  if (name == "deepseek2") return ChatTemplate{ChatFormat::kDeepseek2, "deepseek2"};
  if (name == "deepseek3") return ChatTemplate{ChatFormat::kDeepseek3, "deepseek3"};
  if (name == "deepseek-r1") return ChatTemplate{ChatFormat::kDeepseekR1, "deepseek-r1"};
  if (name == "deepseek3.1") return ChatTemplate{ChatFormat::kDeepseek31, "deepseek3.1"};
  if (name == "deepseek4") return ChatTemplate{ChatFormat::kDeepseek4, "deepseek4"};
  std::string all;
  for (const std::string& n : ChatTemplateNames()) all += (all.empty() ? "" : ", ") + n;
  return Status::InvalidArgument("--chat-template '" + std::string(name) +
                                 "' is not one of: " + all);
}

ChatTemplate DetectChatTemplate(const storage::GgufFile& file, bool vocab_has_user_token,
                                std::string* why) {
  const std::string t = file.GetStringOr("tokenizer.chat_template", "");
  if (!t.empty()) {
    if (t.find(kUser) != std::string::npos) {
      // V3.1 and V4 switch on a `thinking` variable and emit "</think>" in the prompt;
      // V4's also drops past reasoning with `drop_thinking` and calls tools in DSML;
      // R1 always opens "<think>".
      if (t.find("thinking") != std::string::npos && t.find("</think>") != std::string::npos) {
        if (t.find("drop_thinking") != std::string::npos || t.find("DSML") != std::string::npos) {
          *why = "tokenizer.chat_template switches thinking and drops past reasoning (V4)";
          return {ChatFormat::kDeepseek4, "deepseek4"};
        }
        *why = "tokenizer.chat_template switches thinking";
        return {ChatFormat::kDeepseek31, "deepseek3.1"};
      }
      if (t.find("<think>") != std::string::npos) {
        *why = "tokenizer.chat_template opens <think>";
        return {ChatFormat::kDeepseekR1, "deepseek-r1"};
      }
      *why = "tokenizer.chat_template uses <｜User｜>";
      return {ChatFormat::kDeepseek3, "deepseek3"};
    }
    if (t.find("User: ") != std::string::npos && t.find("Assistant:") != std::string::npos) {
      *why = "tokenizer.chat_template uses 'User: ... Assistant:'";
      return {ChatFormat::kDeepseek2, "deepseek2"};
    }
  }
  if (vocab_has_user_token && file.GetStringOr("general.architecture", "") == "deepseek4") {
    *why = "a deepseek4 model without a recognisable template: V4's";
    return {ChatFormat::kDeepseek4, "deepseek4"};
  }
  if (vocab_has_user_token) {
    *why = t.empty() ? "no tokenizer.chat_template; the vocabulary has <｜User｜>"
                     : "unrecognised tokenizer.chat_template; the vocabulary has <｜User｜>";
    return {ChatFormat::kDeepseek3, "deepseek3"};
  }
  *why = "no recognisable template and no <｜User｜> token";
  return {ChatFormat::kDeepseek2, "deepseek2"};
}

}  // namespace strata::engine

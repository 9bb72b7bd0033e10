#include "engine/tool_calls.h"

namespace strata::engine {

ToolMarkers ToolMarkers::Of(const Tokenizer& t) {
  ToolMarkers m;
  m.calls_begin = t.Find("<｜tool▁calls▁begin｜>");
  m.call_begin = t.Find("<｜tool▁call▁begin｜>");
  m.sep = t.Find("<｜tool▁sep｜>");
  m.call_end = t.Find("<｜tool▁call▁end｜>");
  m.calls_end = t.Find("<｜tool▁calls▁end｜>");
  m.output_begin = t.Find("<｜tool▁output▁begin｜>");
  m.output_end = t.Find("<｜tool▁output▁end｜>");
  return m;
}

bool ToolMarkers::complete() const {
  return calls_begin >= 0 && call_begin >= 0 && sep >= 0 && call_end >= 0 && calls_end >= 0 &&
         output_begin >= 0 && output_end >= 0;
}

std::string ToolsSystemPrompt(const std::vector<ToolDefinition>& tools) {
  std::string s = "## Tools\nYou have access to the following tools:\n";
  for (const ToolDefinition& t : tools) {
    s += "\n### " + t.name + "\nDescription: " + t.description + "\n\nParameters: " +
         (t.parameters.empty() ? "{}" : t.parameters) + "\n";
  }
  s +=
      "\nIMPORTANT: ALWAYS adhere to this exact format for tool use:\n"
      "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>tool_call_name<｜tool▁sep｜>tool_call_arguments"
      "<｜tool▁call▁end｜>{{additional_tool_calls}}<｜tool▁calls▁end｜>\n\n"
      "Where:\n\n"
      "- `tool_call_name` must be an exact match to one of the available tools\n"
      "- `tool_call_arguments` must be valid JSON that strictly follows the tool's Parameters "
      "Schema\n"
      "- For multiple tool calls, chain them directly without separators or spaces\n";
  return s;
}

std::string ToolCallParser::Push(int32_t token, const std::string& text) {
  switch (state_) {
    case State::kText:
      if (token == m_.calls_begin) {
        state_ = State::kBetween;
        return "";
      }
      return text;
    case State::kBetween:
      if (token == m_.call_begin) {
        current_ = {};
        state_ = State::kName;
      } else if (token == m_.calls_end) {
        state_ = State::kClosed;
      }
      return "";  // anything else between calls is dropped
    case State::kName:
      if (token == m_.sep) {
        state_ = State::kArguments;
      } else {
        current_.name += text;
      }
      return "";
    case State::kArguments:
      if (token == m_.call_end) {
        calls_.push_back(std::move(current_));
        current_ = {};
        state_ = State::kBetween;
      } else {
        current_.arguments += text;
      }
      return "";
    case State::kClosed:
      return "";
  }
  return "";
}

}  // namespace strata::engine

// Tool calls in the DeepSeek-V3.1 format (V3.1 and V3.2; docs/CHAT_TEMPLATES.md "Tool
// calls"): the tools are described in the system prompt; the model calls them as
//   <｜tool▁calls▁begin｜><｜tool▁call▁begin｜>NAME<｜tool▁sep｜>ARGUMENTS<｜tool▁call▁end｜>...<｜tool▁calls▁end｜>
// with ARGUMENTS a JSON object, and reads each result as
//   <｜tool▁output▁begin｜>RESULT<｜tool▁output▁end｜>.
// The markers are control tokens of the DeepSeek vocabulary. ToolCallParser picks the
// calls out of a stream of generated tokens. Thread-compatible.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "engine/tokenizer/tokenizer.h"

namespace strata::engine {

struct ToolCall {
  std::string id;         // the API's id for it ("call_...", "toolu_...")
  std::string name;
  std::string arguments;  // a JSON object, as text
};

struct ToolDefinition {
  std::string name;
  std::string description;
  std::string parameters;  // a JSON schema, as text
};

// The markers' token ids in a vocabulary; complete() when it has them all.
struct ToolMarkers {
  int32_t calls_begin = -1, call_begin = -1, sep = -1, call_end = -1, calls_end = -1;
  int32_t output_begin = -1, output_end = -1;
  static ToolMarkers Of(const Tokenizer& tokenizer);
  bool complete() const;
};

// What the system prompt says about `tools`, in the format the V3.1 model card gives.
std::string ToolsSystemPrompt(const std::vector<ToolDefinition>& tools);

class ToolCallParser {
 public:
  explicit ToolCallParser(const ToolMarkers& markers) : m_(markers) {}

  // Feeds a generated token and the text the streaming decoder made of it. Returns the
  // part of that text that is the answer (none once the calls begin); a call that
  // completes is appended to calls().
  std::string Push(int32_t token, const std::string& text);
  // Whether the model has begun calling tools.
  bool calling() const { return state_ != State::kText; }
  // Whether the calls block was closed.
  bool closed() const { return state_ == State::kClosed; }
  const std::vector<ToolCall>& calls() const { return calls_; }

 private:
  enum class State { kText, kBetween, kName, kArguments, kClosed };
  const ToolMarkers m_;
  State state_ = State::kText;
  ToolCall current_;
  std::vector<ToolCall> calls_;
};

}  // namespace strata::engine

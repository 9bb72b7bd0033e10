// The tokens a request asks the model to continue: the conversation in the model's
// chat template (a final assistant message is a start of the answer to continue, not a
// closed turn), or a completion's raw text after BOS. Thread-safe (const).
#pragma once

#include <cstdint>
#include <vector>

#include "engine/chat_template.h"
#include "engine/tool_calls.h"
#include "engine/tokenizer/tokenizer.h"
#include "server/api_request.h"

namespace strata::server {

class Prompter {
 public:
  // `thinking`: whether hybrid templates think when the request does not say.
  Prompter(const engine::Tokenizer& tokenizer, engine::ChatTemplate chat_template, bool thinking)
      : tokenizer_(tokenizer),
        template_(std::move(chat_template)),
        thinking_(thinking),
        markers_(engine::ToolMarkers::Of(tokenizer)) {}

  std::vector<int32_t> Tokens(const GenerationRequest& request) const;
  // Whether the answer starts inside the model's reasoning block.
  bool StartsThinking(const GenerationRequest& request) const;
  // Whether the model's template has a tool-call format (engine/tool_calls.h) and its
  // vocabulary the markers.
  bool SupportsTools() const { return template_.SupportsTools() && markers_.complete(); }
  const engine::ToolMarkers& tool_markers() const { return markers_; }
  const std::string& template_name() const { return template_.name; }
  const engine::Tokenizer& tokenizer() const { return tokenizer_; }

 private:
  const engine::Tokenizer& tokenizer_;
  const engine::ChatTemplate template_;
  const bool thinking_;
  const engine::ToolMarkers markers_;
};

}  // namespace strata::server

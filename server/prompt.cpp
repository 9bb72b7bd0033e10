#include "server/prompt.h"

#include "engine/chat_session.h"

namespace strata::server {

std::vector<int32_t> Prompter::Tokens(const GenerationRequest& r) const {
  if (r.api == Api::kCompletion) {
    std::vector<int32_t> tokens;
    if (tokenizer_.bos() >= 0) tokens.push_back(tokenizer_.bos());
    const std::vector<int32_t> text = tokenizer_.Encode(r.prompt, false, false);
    tokens.insert(tokens.end(), text.begin(), text.end());
    return tokens;
  }
  return engine::EncodeConversation(tokenizer_, template_, r.system, r.messages,
                                    r.thinking.value_or(thinking_), /*continue_last=*/true,
                                    r.tools);
}

bool Prompter::StartsThinking(const GenerationRequest& r) const {
  // After a tool's result the model answers without a new answer prompt.
  return r.api != Api::kCompletion && r.messages.back().role == "user" &&
         template_.Thinks(r.thinking.value_or(thinking_));
}

}  // namespace strata::server

// The file `/save` writes and `/load` reads: a chat conversation as JSON
//   {"format": "strata-chat", "version": 1, "template": "deepseek3",
//    "system": "...", "messages": [{"role": "user", "content": "..."}, ...]}
// Messages alternate, starting with the user. Parsing never trusts the input: anything
// else is one Corruption line naming the file and what is wrong. Pure; thread-safe.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "engine/chat_session.h"
#include "util/status.h"

namespace strata::tools {

struct Conversation {
  std::string chat_template;
  std::string system;
  std::vector<engine::ChatMessage> messages;
};

std::string SerializeConversation(const Conversation& c);
// `name` is used in error messages.
Result<Conversation> ParseConversation(std::string_view text, const std::string& name);

}  // namespace strata::tools

#include "tools/conversation_file.h"

#include <nlohmann/json.hpp>

namespace strata::tools {

std::string SerializeConversation(const Conversation& c) {
  nlohmann::ordered_json j;
  j["format"] = "strata-chat";
  j["version"] = 1;
  j["template"] = c.chat_template;
  j["system"] = c.system;
  auto& msgs = j["messages"] = nlohmann::ordered_json::array();
  for (const engine::ChatMessage& m : c.messages) {
    msgs.push_back({{"role", m.role}, {"content", m.content}});
  }
  // Invalid UTF-8 (possible in a model's raw output) is written as U+FFFD.
  return j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
}

Result<Conversation> ParseConversation(std::string_view text, const std::string& name) {
  auto bad = [&](const std::string& why) {
    return Status::Corruption("'" + name + "' is not a strata conversation: " + why);
  };
  const nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return bad("not valid JSON");
  if (!j.is_object() || !j.contains("format") || j["format"] != "strata-chat") {
    return bad("no \"format\": \"strata-chat\"");
  }
  if (!j.contains("version") || !j["version"].is_number_integer() || j["version"] != 1) {
    return bad("unknown version (this strata reads version 1)");
  }
  Conversation c;
  for (const char* key : {"template", "system"}) {
    if (!j.contains(key)) continue;
    if (!j[key].is_string()) return bad(std::string("\"") + key + "\" is not a string");
    (std::string_view(key) == "system" ? c.system : c.chat_template) = j[key].get<std::string>();
  }
  if (!j.contains("messages") || !j["messages"].is_array()) return bad("no messages array");
  for (const auto& m : j["messages"]) {
    if (!m.is_object() || !m.contains("role") || !m.contains("content") || !m["role"].is_string() ||
        !m["content"].is_string()) {
      return bad("message " + std::to_string(c.messages.size()) + " lacks a role or content");
    }
    const std::string role = m["role"].get<std::string>();
    const std::string want = c.messages.size() % 2 == 0 ? "user" : "assistant";
    if (role != want) {
      return bad("message " + std::to_string(c.messages.size()) + " is '" + role + "', expected '" +
                 want + "' (turns alternate, starting with the user)");
    }
    c.messages.push_back({role, m["content"].get<std::string>()});
  }
  return c;
}

}  // namespace strata::tools

// What a client asks of `strata serve`, parsed from the JSON of the three generation
// endpoints into one request type: OpenAI's /v1/chat/completions and /v1/completions,
// and Anthropic's /v1/messages. Parsing is strict: a field strata does not know, a
// wrong type or a value out of range is an ApiError naming the field (a 4xx for the
// client, never a crash); fields that cannot change strata's output are accepted and
// ignored (user, metadata, n = 1, penalties of 0). Tools: OpenAI's `tools` (functions),
// `tool_choice` auto or none, assistant `tool_calls` and `tool` messages; Anthropic's
// `tools` (custom), `tool_choice` auto or none, `tool_use` and `tool_result` blocks.
// Pure functions; thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "engine/chat_session.h"

namespace strata::server {

enum class Api { kChat, kCompletion, kMessages };

// An error the client caused, as both APIs report it: the HTTP status, a type
// ("invalid_request_error", "not_found_error", ...), a message and the field at fault.
struct ApiError {
  int status = 400;
  std::string type = "invalid_request_error";
  std::string message;
  std::string param;  // "" when no single field is at fault
};

struct GenerationRequest {
  Api api = Api::kChat;
  std::string model;
  std::string system;                          // chat and messages
  std::vector<engine::ChatMessage> messages;   // chat and messages: user, assistant and
                                               // tool (a tool's result) turns
  std::string prompt;                          // completion
  int32_t max_tokens = -1;                     // -1: until EOS or the context is full
  std::vector<std::string> stop;               // stop strings (not included in the output)
  bool stream = false;
  bool include_usage = false;                  // OpenAI stream_options.include_usage
  std::optional<bool> thinking;                // Anthropic thinking / OpenAI reasoning_effort
  bool ignore_eos = false;                     // OpenAI extension (as llama.cpp's server)
  std::vector<engine::ToolDefinition> tools;   // the tools the model may call (none with
                                               // tool_choice "none")
  engine::SamplerOptions sampling;             // the API's defaults unless given
};

// Exactly one of the two is set.
struct ParsedRequest {
  GenerationRequest request;
  std::optional<ApiError> error;
};

ParsedRequest ParseRequest(Api api, std::string_view body);

}  // namespace strata::server

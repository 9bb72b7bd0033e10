// The answer to a generation request in its API's shape: OpenAI chat completions
// (message with `reasoning_content` for the <think> part and `tool_calls`), OpenAI
// completions, and Anthropic messages (a thinking block, a text block, tool_use blocks). Streamed as server-sent
// events (OpenAI: chunks, then usage when asked, then [DONE]; Anthropic: message_start,
// content blocks with their deltas, message_delta, message_stop), or as one JSON body.
// Thread-compatible; one formatter per response.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "server/api_request.h"
#include "server/answer.h"

namespace strata::server {

class ResponseFormatter {
 public:
  virtual ~ResponseFormatter() = default;
  // For `request`, answered by `model`; `id` is unique per response.
  static std::unique_ptr<ResponseFormatter> For(const GenerationRequest& request, std::string id,
                                                std::string model, int64_t created,
                                                int32_t prompt_tokens);
  // What to send first (streaming only; "" otherwise).
  virtual std::string Begin() = 0;
  // A piece of the answer: streaming, the events to send now; else "" (kept for End).
  virtual std::string Text(std::string_view text, bool reasoning) = 0;
  // The answer's `index`-th tool call, complete: streaming, its events; else "".
  virtual std::string ToolCall(const engine::ToolCall& call, int index) = 0;
  // The last events (streaming) or the whole body.
  virtual std::string End(const GenerationResult& result) = 0;
};

// The error object of `api` (OpenAI's {"error": {...}} or Anthropic's {"type": "error"}).
std::string ErrorBody(Api api, const ApiError& error);
// One server-sent event: "event: NAME\n" when named, then "data: DATA\n\n".
std::string SseEvent(std::string_view name, std::string_view data);

}  // namespace strata::server

// libFuzzer target: arbitrary bytes as the body of each of strata serve's generation
// endpoints. Parsing either accepts (with values inside the API's ranges and a request
// the slot can run) or returns a 4xx naming what is wrong; never a crash or a throw.
// The first byte picks the API, so one corpus covers all three.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "server/api_request.h"
#include "server/api_response.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace strata::server;
  if (size == 0) return 0;
  const Api api = data[0] % 3 == 0 ? Api::kChat : data[0] % 3 == 1 ? Api::kCompletion : Api::kMessages;
  const std::string_view body(reinterpret_cast<const char*>(data + 1), size - 1);
  const ParsedRequest p = ParseRequest(api, body);
  if (p.error) {
    if (p.error->status < 400 || p.error->status > 499 || p.error->message.empty()) abort();
    if (ErrorBody(api, *p.error).empty()) abort();
    return 0;
  }
  const GenerationRequest& r = p.request;
  if (r.model.empty() && api != Api::kCompletion && r.messages.empty()) abort();
  if (api != Api::kCompletion && r.messages.empty()) abort();
  if (r.max_tokens == 0 || r.max_tokens < -1) abort();
  if (!(r.sampling.temp >= 0 && r.sampling.temp <= 2)) abort();
  if (!(r.sampling.top_p >= 0 && r.sampling.top_p <= 1)) abort();
  for (const auto& m : r.messages) {
    if (m.role != "user" && m.role != "assistant" && m.role != "tool") abort();
    if (!m.tool_calls.empty() && m.role != "assistant") abort();
    for (const auto& c : m.tool_calls) {
      if (c.name.empty()) abort();
    }
  }
  for (const auto& t : r.tools) {
    if (t.name.empty() || t.name.size() > 64) abort();
  }
  // Whatever was accepted can be answered in its API's shape, tool calls included.
  auto f = ResponseFormatter::For(r, "id", "m", 0, 1);
  f->Begin();
  f->Text("x", false);
  f->ToolCall({"", "tool", "{\"a\": 1}"}, 0);
  GenerationResult result;
  result.finish_reason = "tool_calls";
  if (f->End(result).empty()) abort();
  return 0;
}

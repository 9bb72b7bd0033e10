// A generation's tokens turned into the answer's text on the request's connection
// thread, as the scheduler samples them: decoded to UTF-8 as it becomes complete,
// stop strings cut out (the generation is cancelled at the first), and the model's
// <think> part marked as reasoning. Text goes to `on_text` as soon as it is final;
// `on_text` returning false (the client went away) cancels the generation, and so does
// `still_wanted` returning false, which is asked while no token comes (a client that
// leaves while its request waits in the queue). With tool markers, calls in the
// model's output (engine/tool_calls.h) are taken out of the text and handed to
// `on_tool_call` as each completes.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "engine/tokenizer/tokenizer.h"
#include "engine/tool_calls.h"
#include "server/api_request.h"
#include "server/generation.h"
#include "util/status.h"

namespace strata::server {

struct GenerationResult {
  int32_t prompt_tokens = 0;
  int32_t cached_tokens = 0;  // of the prompt, reused from a slot (not prefilled)
  int32_t completion_tokens = 0;
  std::string finish_reason;  // "stop" (EOS or a stop string), "length", "cancelled"
  std::string stop_sequence;  // the stop string that ended it, if one did
  double prefill_s = 0;       // time to first token, queueing included
  double decode_s = 0;
  uint32_t slot = 0;
  std::vector<engine::ToolCall> tool_calls;  // finish_reason "tool_calls" when any
};

using OnText = std::function<bool(std::string_view text, bool reasoning)>;
// A tool call the model completed, the `index`-th of this answer; false cancels.
using OnToolCall = std::function<bool(const engine::ToolCall& call, int index)>;

// Runs until the generation has ended (a cancelled one included) and returns the error
// that ended it, if one did.
Status StreamAnswer(Generation& g, const GenerationRequest& request,
                    const engine::Tokenizer& tokenizer, bool starts_thinking,
                    const OnText& on_text, const std::function<bool()>& still_wanted,
                    GenerationResult* result, const engine::ToolMarkers* markers = nullptr,
                    const OnToolCall& on_tool_call = {});

}  // namespace strata::server

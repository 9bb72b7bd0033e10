#include "server/answer.h"

#include <optional>
#include <vector>

#include "engine/chat_session.h"
#include "server/stop_matcher.h"

namespace strata::server {

Status StreamAnswer(Generation& g, const GenerationRequest& r, const engine::Tokenizer& tokenizer,
                    bool starts_thinking, const OnText& on_text,
                    const std::function<bool()>& still_wanted, GenerationResult* result,
                    const engine::ToolMarkers* markers, const OnToolCall& on_tool_call) {
  *result = GenerationResult{};
  result->prompt_tokens = static_cast<int32_t>(g.prompt().size());
  engine::StreamingDecoder decoder(tokenizer);
  StopMatcher stops(r.stop);
  engine::ThinkSplitter splitter(starts_thinking);
  bool gone = false;  // the client, or the server, no longer wants the text
  auto deliver = [&](std::string_view text, bool reasoning) {
    if (!gone && !text.empty() && !on_text(text, reasoning)) gone = true;
  };
  auto emit = [&](const std::string& text) {
    if (r.api == Api::kCompletion) {
      deliver(text, false);
    } else {
      splitter.Push(text, deliver);
    }
  };
  std::optional<engine::ToolCallParser> tools;
  if (markers) tools.emplace(*markers);
  // Text after a token: the decoder's, less what belongs to a tool call; each call
  // that completes goes to on_tool_call.
  auto text_of = [&](int32_t t) {
    std::string piece = decoder.Push(t);
    if (!tools) return piece;
    piece = tools->Push(t, piece);
    while (result->tool_calls.size() < tools->calls().size()) {
      engine::ToolCall call = tools->calls()[result->tool_calls.size()];
      const int index = static_cast<int>(result->tool_calls.size());
      result->tool_calls.push_back(call);
      if (on_tool_call && !on_tool_call(call, index)) gone = true;
    }
    return piece;
  };
  std::vector<int32_t> tokens;
  bool done = false;  // a stop string matched or the text is no longer wanted
  while (true) {
    tokens.clear();
    const bool more = g.Take(&tokens, std::chrono::milliseconds(100));
    for (const int32_t t : tokens) {
      if (done) break;  // sampled after the end, before the cancel took effect
      ++result->completion_tokens;
      emit(stops.Push(text_of(t)));
      if (stops.stopped()) {
        result->finish_reason = "stop";
        result->stop_sequence = stops.matched();
      }
      done = stops.stopped() || gone;
    }
    if (!done && tokens.empty() && more && !still_wanted()) gone = done = true;
    if (done) g.Cancel();
    if (!more) break;
  }
  if (!stops.stopped()) emit(stops.Push(decoder.Flush()) + stops.Flush());
  if (r.api != Api::kCompletion) splitter.Flush(deliver);
  const Generation::Outcome o = g.outcome();
  result->cached_tokens = o.cached_tokens;
  result->prefill_s = o.prefill_s;
  result->decode_s = o.decode_s;
  result->slot = o.slot;
  if (result->finish_reason.empty() && !result->tool_calls.empty() && !gone) {
    result->finish_reason = "tool_calls";
  }
  if (result->finish_reason.empty()) {
    result->finish_reason = gone || o.end == Generation::End::kCancelled ? "cancelled"
                            : o.end == Generation::End::kEos            ? "stop"
                                                                        : "length";
  }
  return o.end == Generation::End::kError ? o.status : Status::Ok();
}

}  // namespace strata::server

// One sequence of `strata serve`: a Session on the shared model, the tokens its state
// holds, and the generation of one request at a time. A new request reuses the longest
// prefix it shares with what the slot holds (the prompt cache in RAM): on MLA models
// the session steps back to that prefix; where state cannot step back (V4, Engram) it
// is reused when the new prompt extends it, else the slot starts over. Reuse never
// changes a bit of the output (prefill chunking does not). Thread-compatible: the
// service runs one request per slot at a time.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "engine/chat_session.h"
#include "engine/chat_template.h"
#include "engine/session.h"
#include "engine/tiered_model.h"
#include "engine/tokenizer/tokenizer.h"
#include "server/api_request.h"
#include "util/status.h"

namespace strata::server {

struct SlotOptions {
  uint32_t n_ctx = 4096;
  storage::GgmlType kv_type = storage::GgmlType::kF16;
  int64_t batch = 512;
  engine::SessionOptions session;
  bool thinking = true;  // hybrid templates, when the request does not say
};

struct GenerationResult {
  int32_t prompt_tokens = 0;
  int32_t cached_tokens = 0;  // of the prompt, reused from the slot (not prefilled)
  int32_t completion_tokens = 0;
  std::string finish_reason;  // "stop" (EOS or a stop string), "length", "cancelled"
  std::string stop_sequence;  // the stop string that ended it, if one did
  double prefill_s = 0;       // time to first token
  double decode_s = 0;
};

class Slot {
 public:
  // Receives text as it becomes final; `reasoning` marks the model's <think> part.
  // Returning false cancels the generation (the client went away).
  using OnText = std::function<bool(std::string_view text, bool reasoning)>;

  Slot(engine::TieredModel& model, const engine::Tokenizer& tokenizer,
       engine::ChatTemplate chat_template, SlotOptions options);

  // The prompt of a request: the conversation in the chat template (a final assistant
  // message is continued), or the raw text of a completion.
  std::vector<int32_t> PromptTokens(const GenerationRequest& request) const;
  // Whether the answer starts inside the model's reasoning block.
  bool StartsThinking(const GenerationRequest& request) const;
  // Generates the answer to `prompt`. Errors: a prompt that leaves no room in the
  // context (ResourceExhausted), a read that failed for good.
  Status Generate(const GenerationRequest& request, const std::vector<int32_t>& prompt,
                  const OnText& on_text, GenerationResult* result);

  uint32_t n_ctx() const { return options_.n_ctx; }
  // The tokens the slot's state holds now.
  const std::vector<int32_t>& cached() const { return cached_; }

 private:
  // Brings the session to `prompt` minus what it already holds; the logits after it.
  Status Prefill(const std::vector<int32_t>& prompt, std::vector<float>* logits,
                 int32_t* reused);

  const engine::Tokenizer& tokenizer_;
  engine::ChatTemplate template_;
  SlotOptions options_;
  engine::Session session_;
  std::vector<int32_t> cached_;
};

}  // namespace strata::server

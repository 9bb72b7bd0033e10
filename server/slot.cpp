#include "server/slot.h"

#include <algorithm>
#include <chrono>

#include "engine/sampler.h"
#include "server/stop_matcher.h"

namespace strata::server {
namespace {

double SecondsSince(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

}  // namespace

Slot::Slot(engine::TieredModel& model, const engine::Tokenizer& tokenizer,
           engine::ChatTemplate chat_template, SlotOptions options)
    : tokenizer_(tokenizer),
      template_(std::move(chat_template)),
      options_(options),
      session_(model.model(), options.n_ctx, options.kv_type, options.session) {}

std::vector<int32_t> Slot::PromptTokens(const GenerationRequest& r) const {
  if (r.api == Api::kCompletion) {
    std::vector<int32_t> tokens;
    if (tokenizer_.bos() >= 0) tokens.push_back(tokenizer_.bos());
    const std::vector<int32_t> text = tokenizer_.Encode(r.prompt, false, false);
    tokens.insert(tokens.end(), text.begin(), text.end());
    return tokens;
  }
  std::vector<int32_t> tokens = engine::EncodeConversation(
      tokenizer_, template_, r.system, r.messages, r.thinking.value_or(options_.thinking));
  // A final assistant message is a start of the answer to continue, not a closed turn.
  if (r.messages.back().role == "assistant" && tokenizer_.eos() >= 0) tokens.pop_back();
  return tokens;
}

bool Slot::StartsThinking(const GenerationRequest& r) const {
  return r.api != Api::kCompletion && r.messages.back().role == "user" &&
         template_.Thinks(r.thinking.value_or(options_.thinking));
}

Status Slot::Prefill(const std::vector<int32_t>& prompt, std::vector<float>* logits,
                     int32_t* reused) {
  size_t common = 0;
  while (common < cached_.size() && common < prompt.size() && cached_[common] == prompt[common]) {
    ++common;
  }
  // At least the prompt's last token is evaluated: its logits start the answer.
  size_t keep = std::min(common, prompt.size() - 1);
  if (keep < cached_.size()) {
    if (session_.can_truncate()) {
      session_.Truncate(static_cast<int64_t>(keep));
    } else {
      session_.Reset();
      keep = 0;
    }
    cached_.resize(keep);
  }
  *reused = static_cast<int32_t>(keep);
  const std::vector<int32_t> rest(prompt.begin() + static_cast<std::ptrdiff_t>(keep), prompt.end());
  if (Status s = session_.Eval(rest, logits, options_.batch); !s.ok()) {
    // The session is as it was before the call; what it holds is still cached_.
    return s;
  }
  cached_ = prompt;
  return Status::Ok();
}

Status Slot::Generate(const GenerationRequest& r, const std::vector<int32_t>& prompt,
                      const OnText& on_text, GenerationResult* result) {
  *result = GenerationResult{};
  result->prompt_tokens = static_cast<int32_t>(prompt.size());
  if (prompt.empty() || prompt.size() + 1 > options_.n_ctx) {
    return Status::ResourceExhausted("the prompt has " + std::to_string(prompt.size()) +
                                     " tokens; the context holds " +
                                     std::to_string(options_.n_ctx) +
                                     " with room for one generated token (raise -c/--ctx-size)");
  }
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<float> logits;
  STRATA_RETURN_IF_ERROR(Prefill(prompt, &logits, &result->cached_tokens));
  result->prefill_s = SecondsSince(t0);

  engine::Sampler sampler(r.sampling);
  for (int32_t t : prompt) sampler.Accept(t);
  engine::StreamingDecoder decoder(tokenizer_);
  StopMatcher stops(r.stop);
  engine::ThinkSplitter splitter(StartsThinking(r));
  bool cancelled = false;
  auto deliver = [&](std::string_view text, bool reasoning) {
    if (!cancelled && !text.empty() && !on_text(text, reasoning)) cancelled = true;
  };
  auto emit = [&](const std::string& text) {
    if (r.api == Api::kCompletion) {
      deliver(text, false);
    } else {
      splitter.Push(text, deliver);
    }
  };
  const auto t1 = std::chrono::steady_clock::now();
  const int32_t limit = r.max_tokens < 0 ? INT32_MAX : r.max_tokens;
  Status status;
  result->finish_reason = "length";
  while (result->completion_tokens < limit) {
    if (session_.n_past() + 1 > static_cast<int64_t>(options_.n_ctx)) break;  // context full
    const int32_t next = sampler.Sample(logits);
    sampler.Accept(next);
    if (next == tokenizer_.eos() && !r.ignore_eos) {
      result->finish_reason = "stop";
      break;
    }
    ++result->completion_tokens;
    emit(stops.Push(decoder.Push(next)));
    if (stops.stopped()) {
      result->finish_reason = "stop";
      result->stop_sequence = stops.matched();
      break;
    }
    if (cancelled) break;
    if (result->completion_tokens == limit) break;
    status = session_.Eval({&next, 1}, &logits, options_.batch);
    if (!status.ok()) break;
    cached_.push_back(next);
  }
  if (!stops.stopped()) emit(stops.Push(decoder.Flush()) + stops.Flush());
  if (r.api != Api::kCompletion) splitter.Flush(deliver);
  if (cancelled) result->finish_reason = "cancelled";
  result->decode_s = SecondsSince(t1);
  return status;
}

}  // namespace strata::server

#include "engine/chat_session.h"

#include <chrono>

#include "engine/tiered_model.h"
#include "util/cancel.h"

namespace strata::engine {
namespace {

double SecondsSince(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

constexpr std::string_view kOpen = "<think>";
constexpr std::string_view kClose = "</think>";

}  // namespace

void ThinkSplitter::Push(std::string_view text, const ChatSession::OnText& out) {
  held_ += text;
  for (;;) {
    const std::string_view tag = inside_ ? kClose : kOpen;
    const size_t at = held_.find(tag);
    if (at != std::string::npos) {
      if (at) out(std::string_view(held_).substr(0, at), inside_);
      held_.erase(0, at + tag.size());
      inside_ = !inside_;
      // A newline right after a tag is layout, not content.
      if (!held_.empty() && held_[0] == '\n') held_.erase(0, 1);
      continue;
    }
    // Keep back only a tail that could still become the tag.
    size_t keep = 0;
    for (size_t n = std::min(held_.size(), tag.size() - 1); n > 0; --n) {
      if (std::string_view(held_).substr(held_.size() - n) == tag.substr(0, n)) {
        keep = n;
        break;
      }
    }
    if (held_.size() > keep) out(std::string_view(held_).substr(0, held_.size() - keep), inside_);
    held_.erase(0, held_.size() - keep);
    return;
  }
}

void ThinkSplitter::Flush(const ChatSession::OnText& out) {
  if (!held_.empty()) out(held_, inside_);
  held_.clear();
}

ChatSession::ChatSession(TieredModel& model, const Tokenizer& tokenizer, ChatTemplate chat_template,
                         ChatOptions options)
    : model_(model),
      tokenizer_(tokenizer),
      template_(std::move(chat_template)),
      options_(std::move(options)),
      session_(model.model(), options_.n_ctx, options_.kv_type, options_.session) {}

void ChatSession::Reset() {
  session_.Reset();
  messages_.clear();
  fed_.clear();
  pending_.clear();
  prefill_logits_.clear();
  started_ = false;
}

namespace {

std::vector<int32_t> EncodeSegments(const Tokenizer& tokenizer,
                                    const std::vector<TextSegment>& segments, bool bos) {
  std::vector<int32_t> out;
  if (bos && tokenizer.bos() >= 0) out.push_back(tokenizer.bos());
  for (const TextSegment& s : segments) {
    const std::vector<int32_t> ids = tokenizer.Encode(s.text, false, s.special);
    out.insert(out.end(), ids.begin(), ids.end());
  }
  return out;
}

}  // namespace

std::vector<int32_t> EncodeConversation(const Tokenizer& tokenizer, const ChatTemplate& chat_template,
                                        const std::string& system,
                                        const std::vector<ChatMessage>& messages, bool thinking,
                                        bool continue_last, const std::vector<ToolDefinition>& tools) {
  std::string system_prompt = system;
  if (!tools.empty() && chat_template.SupportsTools()) {
    system_prompt += (system_prompt.empty() ? "" : "\n\n") + ToolsSystemPrompt(tools);
  }
  std::vector<int32_t> tokens = EncodeSegments(tokenizer, chat_template.System(system_prompt), true);
  auto add = [&](const std::vector<TextSegment>& segments) {
    const std::vector<int32_t> part = EncodeSegments(tokenizer, segments, false);
    tokens.insert(tokens.end(), part.begin(), part.end());
  };
  auto close = [&] {
    if (tokenizer.eos() >= 0) tokens.push_back(tokenizer.eos());
  };
  // What the previous message was: a user turn (an answer prompt opens the next
  // answer) or a tool result (the answer follows it directly).
  bool after_user = false, after_tool = false;
  for (size_t i = 0; i < messages.size(); ++i) {
    const ChatMessage& m = messages[i];
    const bool last = i + 1 == messages.size();
    if (m.role == "user") {
      add(chat_template.UserText(m.content));
      if (last) add(chat_template.AssistantPrompt(thinking));
    } else if (m.role == "tool") {
      add(chat_template.ToolResult(m.content));
    } else if (!m.tool_calls.empty()) {
      add(chat_template.ToolCallsAnswer(m.content, m.tool_calls, after_user));
      close();
    } else if (last && continue_last) {
      if (!after_tool) add(chat_template.AssistantPrompt(thinking));
      const std::vector<int32_t> part = tokenizer.Encode(m.content, false, false);
      tokens.insert(tokens.end(), part.begin(), part.end());
    } else if (after_tool) {
      add({{m.content, false}});
      close();
    } else {
      add(chat_template.PastAnswer(m.content));
      close();
    }
    after_user = m.role == "user";
    after_tool = m.role == "tool";
  }
  return tokens;
}

std::vector<int32_t> ChatSession::Encode(const std::vector<TextSegment>& segments, bool bos) const {
  return EncodeSegments(tokenizer_, segments, bos);
}

Status ChatSession::Feed(const std::vector<int32_t>& tokens, std::vector<float>* logits) {
  STRATA_RETURN_IF_ERROR(session_.Eval(tokens, logits, options_.batch));
  fed_.insert(fed_.end(), tokens.begin(), tokens.end());
  return Status::Ok();
}

Status ChatSession::Turn(const std::string& user, const OnText& on_text, TurnStats* stats) {
  *stats = TurnStats{};
  std::vector<int32_t> tokens = pending_;
  if (!started_) tokens = Encode(template_.System(system_), true);
  const bool thinks = template_.Thinks(options_.thinking);
  const std::vector<int32_t> turn = Encode(template_.User(user, options_.thinking), false);
  tokens.insert(tokens.end(), turn.begin(), turn.end());
  const int64_t free = static_cast<int64_t>(n_ctx()) - n_past();
  if (static_cast<int64_t>(tokens.size()) + 1 > free) {
    return Status::ResourceExhausted(
        "context full: this message needs " + std::to_string(tokens.size()) + " tokens and " +
        std::to_string(std::max<int64_t>(free, 0)) + " of " + std::to_string(n_ctx()) +
        " are free; /reset starts a new conversation (or raise -c/--ctx-size)");
  }
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<float> logits;
  STRATA_RETURN_IF_ERROR(Feed(tokens, &logits));
  started_ = true;
  pending_.clear();
  prefill_logits_ = logits;
  messages_.push_back({"user", user});
  stats->prompt_tokens = static_cast<int32_t>(tokens.size());
  stats->prefill_s = SecondsSince(t0);

  Sampler sampler(options_.sampling);
  for (int32_t t : fed_) sampler.Accept(t);
  StreamingDecoder decoder(tokenizer_);
  ThinkSplitter splitter(thinks);  // a thinking prompt ends by opening <think>
  std::string generated;
  auto emit = [&](std::string_view text) {
    generated += text;
    splitter.Push(text, on_text);
  };
  const tiers::CacheStats before = model_.cache().stats();
  const auto t1 = std::chrono::steady_clock::now();
  const int32_t limit = options_.n_predict < 0 ? INT32_MAX : options_.n_predict;
  bool closed = false;  // the model ended its turn with EOS
  Status status;
  while (stats->generated < limit) {
    if (InterruptRequested()) {
      stats->cancelled = true;
      break;
    }
    const int32_t next = sampler.Sample(logits);
    sampler.Accept(next);
    ++stats->generated;
    if (next == tokenizer_.eos() && !options_.ignore_eos) {
      pending_ = {next};
      closed = true;
      break;
    }
    emit(decoder.Push(next));
    // The last token of an answer is fed with the next turn, not now. The context
    // must keep room for it and the EOS that closes the answer.
    const bool full = n_past() + 2 > static_cast<int64_t>(n_ctx());
    if (stats->generated == limit || full) {
      stats->context_full = full;
      pending_ = {next};
      break;
    }
    status = Feed({next}, &logits);
    if (!status.ok()) break;
  }
  emit(decoder.Flush());
  splitter.Flush(on_text);
  messages_.push_back({"assistant", generated});
  if (!closed && tokenizer_.eos() >= 0) {
    // A cut-off answer is closed as the template closes answers.
    const std::vector<int32_t> end =
        Encode(template_.AssistantEnd(tokenizer_.token_text(tokenizer_.eos())), false);
    pending_.insert(pending_.end(), end.begin(), end.end());
  }
  stats->decode_s = SecondsSince(t1);
  stats->tiers = model_.cache().stats().Since(before);
  if (stats->cancelled) ClearInterrupt();
  return status;
}

Status ChatSession::Load(std::string system, std::vector<ChatMessage> messages) {
  Reset();
  system_ = std::move(system);
  std::vector<int32_t> tokens =
      EncodeConversation(tokenizer_, template_, system_, messages, options_.thinking);
  if (tokens.size() + 1 > n_ctx()) {
    return Status::ResourceExhausted("the conversation has " + std::to_string(tokens.size()) +
                                     " tokens; the context holds " + std::to_string(n_ctx()) +
                                     " (raise -c/--ctx-size)");
  }
  // An answer's EOS is fed with the next turn, as after a live answer.
  if (!messages.empty() && messages.back().role == "assistant" && tokenizer_.eos() >= 0) {
    tokens.pop_back();
    pending_ = {tokenizer_.eos()};
  }
  std::vector<float> logits;
  STRATA_RETURN_IF_ERROR(Feed(tokens, &logits));
  prefill_logits_ = logits;
  started_ = true;
  messages_ = std::move(messages);
  return Status::Ok();
}

}  // namespace strata::engine

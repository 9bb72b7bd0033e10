#include "server/api_response.h"

#include <nlohmann/json.hpp>

namespace strata::server {
namespace {

using nlohmann::ordered_json;

std::string Dump(const ordered_json& j) {
  // Invalid UTF-8 (a token cut mid-character) becomes U+FFFD, never an exception.
  return j.dump(-1, ' ', false, ordered_json::error_handler_t::replace);
}

ordered_json OpenAiUsage(const GenerationResult& r) {
  return {{"prompt_tokens", r.prompt_tokens},
          {"completion_tokens", r.completion_tokens},
          {"total_tokens", r.prompt_tokens + r.completion_tokens},
          {"prompt_tokens_details", {{"cached_tokens", r.cached_tokens}}}};
}

std::string OpenAiFinish(const GenerationResult& r) {
  if (r.finish_reason == "tool_calls") return "tool_calls";
  return r.finish_reason == "length" ? "length" : "stop";
}

// A call's id in this response: the response's id and the call's place.
std::string CallId(std::string_view prefix, const std::string& response_id, int index) {
  return std::string(prefix) + response_id + "_" + std::to_string(index);
}

// A call's arguments as the object Anthropic's `input` is ({} if the model's text is
// not a JSON object).
nlohmann::ordered_json InputObject(const std::string& arguments) {
  nlohmann::ordered_json j = nlohmann::ordered_json::parse(arguments, nullptr, false);
  return j.is_object() ? j : nlohmann::ordered_json::object();
}

class OpenAiFormatter : public ResponseFormatter {
 public:
  OpenAiFormatter(const GenerationRequest& r, std::string id, std::string model, int64_t created)
      : chat_(r.api == Api::kChat),
        stream_(r.stream),
        usage_(r.include_usage),
        id_(std::move(id)),
        model_(std::move(model)),
        created_(created) {}

  std::string Begin() override {
    if (!stream_ || !chat_) return "";
    return Chunk({{"role", "assistant"}, {"content", ""}}, nullptr);
  }

  std::string Text(std::string_view text, bool reasoning) override {
    if (!stream_) {
      (reasoning ? reasoning_ : content_) += text;
      return "";
    }
    if (!chat_) return Chunk(std::string(text), nullptr);
    return Chunk({{reasoning ? "reasoning_content" : "content", std::string(text)}}, nullptr);
  }

  std::string ToolCall(const engine::ToolCall& call, int index) override {
    ordered_json j = {{"index", index},
                      {"id", CallId("call_", id_, index)},
                      {"type", "function"},
                      {"function", {{"name", call.name}, {"arguments", call.arguments}}}};
    if (!stream_) {
      calls_.push_back(std::move(j));
      return "";
    }
    return Chunk({{"tool_calls", ordered_json::array({j})}}, nullptr);
  }

  std::string End(const GenerationResult& r) override {
    if (stream_) {
      std::string out = Chunk(chat_ ? ordered_json::object() : ordered_json(""), OpenAiFinish(r));
      if (usage_) {
        ordered_json j = Header();
        j["choices"] = ordered_json::array();
        j["usage"] = OpenAiUsage(r);
        out += SseEvent("", Dump(j));
      }
      return out + SseEvent("", "[DONE]");
    }
    ordered_json j = Header();
    ordered_json choice = {{"index", 0}};
    if (chat_) {
      ordered_json message = {{"role", "assistant"}, {"content", content_}};
      if (!reasoning_.empty()) message["reasoning_content"] = reasoning_;
      if (!calls_.empty()) {
        for (ordered_json& c : calls_) c.erase("index");
        message["tool_calls"] = calls_;
        if (content_.empty()) message["content"] = nullptr;
      }
      choice["message"] = message;
    } else {
      choice["text"] = content_;
      choice["logprobs"] = nullptr;
    }
    choice["finish_reason"] = OpenAiFinish(r);
    j["choices"] = ordered_json::array({choice});
    j["usage"] = OpenAiUsage(r);
    return Dump(j);
  }

 private:
  ordered_json Header() const {
    return {{"id", id_},
            {"object", chat_ ? (stream_ ? "chat.completion.chunk" : "chat.completion")
                             : "text_completion"},
            {"created", created_},
            {"model", model_},
            {"system_fingerprint", "strata"}};
  }
  // A streamed chunk: chat's `delta` object, or completion's `text`.
  std::string Chunk(const ordered_json& delta, const ordered_json& finish) const {
    ordered_json j = Header();
    ordered_json choice = {{"index", 0}};
    if (chat_) {
      choice["delta"] = delta;
    } else {
      choice["text"] = delta;
      choice["logprobs"] = nullptr;
    }
    choice["finish_reason"] = finish;
    j["choices"] = ordered_json::array({choice});
    return SseEvent("", Dump(j));
  }

  const bool chat_, stream_, usage_;
  const std::string id_, model_;
  const int64_t created_;
  std::string content_, reasoning_;
  ordered_json calls_ = ordered_json::array();  // non-streamed tool calls
};

class AnthropicFormatter : public ResponseFormatter {
 public:
  AnthropicFormatter(const GenerationRequest& r, std::string id, std::string model,
                     int32_t prompt_tokens)
      : stream_(r.stream), id_(std::move(id)), model_(std::move(model)), prompt_(prompt_tokens) {}

  std::string Begin() override {
    if (!stream_) return "";
    ordered_json message = {{"id", id_},
                            {"type", "message"},
                            {"role", "assistant"},
                            {"content", ordered_json::array()},
                            {"model", model_},
                            {"stop_reason", nullptr},
                            {"stop_sequence", nullptr},
                            {"usage", {{"input_tokens", prompt_}, {"output_tokens", 0}}}};
    return Event("message_start", {{"type", "message_start"}, {"message", message}});
  }

  std::string Text(std::string_view text, bool reasoning) override {
    if (!stream_) {
      (reasoning ? thinking_ : text_) += text;
      return "";
    }
    std::string out;
    const std::string kind = reasoning ? "thinking" : "text";
    if (open_ != kind) {
      out += Close();
      out += Event("content_block_start",
                   {{"type", "content_block_start"},
                    {"index", index_},
                    {"content_block", reasoning ? ordered_json{{"type", "thinking"}, {"thinking", ""}}
                                                : ordered_json{{"type", "text"}, {"text", ""}}}});
      open_ = kind;
    }
    ordered_json delta = reasoning ? ordered_json{{"type", "thinking_delta"}, {"thinking", text}}
                                   : ordered_json{{"type", "text_delta"}, {"text", text}};
    return out + Event("content_block_delta",
                       {{"type", "content_block_delta"}, {"index", index_}, {"delta", delta}});
  }

  std::string ToolCall(const engine::ToolCall& call, int index) override {
    const std::string id = CallId("toolu_", id_, index);
    if (!stream_) {
      calls_.push_back({{"type", "tool_use"}, {"id", id}, {"name", call.name},
                        {"input", InputObject(call.arguments)}});
      return "";
    }
    std::string out = Close();
    out += Event("content_block_start",
                 {{"type", "content_block_start"},
                  {"index", index_},
                  {"content_block", {{"type", "tool_use"}, {"id", id}, {"name", call.name},
                                     {"input", ordered_json::object()}}}});
    out += Event("content_block_delta",
                 {{"type", "content_block_delta"},
                  {"index", index_},
                  {"delta", {{"type", "input_json_delta"},
                             {"partial_json", InputObject(call.arguments).dump()}}}});
    out += Event("content_block_stop", {{"type", "content_block_stop"}, {"index", index_}});
    ++index_;
    return out;
  }

  std::string End(const GenerationResult& r) override {
    const ordered_json stop_sequence =
        r.stop_sequence.empty() ? ordered_json(nullptr) : ordered_json(r.stop_sequence);
    const std::string reason = !r.stop_sequence.empty()           ? "stop_sequence"
                               : r.finish_reason == "length"     ? "max_tokens"
                               : r.finish_reason == "tool_calls" ? "tool_use"
                                                                 : "end_turn";
    if (stream_) {
      std::string out = Close();
      out += Event("message_delta",
                   {{"type", "message_delta"},
                    {"delta", {{"stop_reason", reason}, {"stop_sequence", stop_sequence}}},
                    {"usage", {{"output_tokens", r.completion_tokens}}}});
      return out + Event("message_stop", {{"type", "message_stop"}});
    }
    ordered_json content = ordered_json::array();
    if (!thinking_.empty()) {
      content.push_back({{"type", "thinking"}, {"thinking", thinking_}, {"signature", ""}});
    }
    if (!text_.empty() || calls_.empty()) content.push_back({{"type", "text"}, {"text", text_}});
    for (const ordered_json& c : calls_) content.push_back(c);
    return Dump({{"id", id_},
                 {"type", "message"},
                 {"role", "assistant"},
                 {"model", model_},
                 {"content", content},
                 {"stop_reason", reason},
                 {"stop_sequence", stop_sequence},
                 {"usage",
                  {{"input_tokens", r.prompt_tokens - r.cached_tokens},
                   {"cache_read_input_tokens", r.cached_tokens},
                   {"output_tokens", r.completion_tokens}}}});
  }

 private:
  static std::string Event(std::string_view name, const ordered_json& data) {
    return SseEvent(name, Dump(data));
  }
  // Ends the open content block, if any (a thinking block gets its empty signature).
  std::string Close() {
    if (open_.empty()) return "";
    std::string out;
    if (open_ == "thinking") {
      out += Event("content_block_delta",
                   {{"type", "content_block_delta"},
                    {"index", index_},
                    {"delta", {{"type", "signature_delta"}, {"signature", ""}}}});
    }
    out += Event("content_block_stop", {{"type", "content_block_stop"}, {"index", index_}});
    ++index_;
    open_.clear();
    return out;
  }

  const bool stream_;
  const std::string id_, model_;
  const int32_t prompt_;
  std::string thinking_, text_;
  ordered_json calls_ = ordered_json::array();  // non-streamed tool_use blocks
  std::string open_;  // the streamed block now open: "", "thinking" or "text"
  int index_ = 0;
};

}  // namespace

std::unique_ptr<ResponseFormatter> ResponseFormatter::For(const GenerationRequest& r,
                                                          std::string id, std::string model,
                                                          int64_t created, int32_t prompt_tokens) {
  if (r.api == Api::kMessages) {
    return std::make_unique<AnthropicFormatter>(r, std::move(id), std::move(model), prompt_tokens);
  }
  return std::make_unique<OpenAiFormatter>(r, std::move(id), std::move(model), created);
}

std::string ErrorBody(Api api, const ApiError& e) {
  if (api == Api::kMessages) {
    return Dump({{"type", "error"}, {"error", {{"type", e.type}, {"message", e.message}}}});
  }
  return Dump({{"error",
                {{"message", e.message},
                 {"type", e.type},
                 {"param", e.param.empty() ? ordered_json(nullptr) : ordered_json(e.param)},
                 {"code", nullptr}}}});
}

std::string SseEvent(std::string_view name, std::string_view data) {
  std::string out;
  if (!name.empty()) out.append("event: ").append(name).append("\n");
  return out.append("data: ").append(data).append("\n\n");
}

}  // namespace strata::server

#include "server/api_request.h"

#include <cctype>
#include <cmath>
#include <set>

#include <nlohmann/json.hpp>

namespace strata::server {
namespace {

using nlohmann::json;

ApiError Bad(std::string param, std::string message) {
  return {400, "invalid_request_error", std::move(message), std::move(param)};
}

// The body's fields one by one; the first problem wins.
class Fields {
 public:
  Fields(const json& body, std::set<std::string> known) : body_(body), known_(std::move(known)) {}

  std::optional<ApiError> Unknown() const {
    for (const auto& [key, value] : body_.items()) {
      if (!known_.count(key)) return Bad(key, "unknown field '" + key + "'");
    }
    return std::nullopt;
  }
  const json* Get(const std::string& key) const {
    const auto it = body_.find(key);
    return it == body_.end() || it->is_null() ? nullptr : &*it;
  }
  std::optional<ApiError> String(const std::string& key, std::string* out, bool required) const {
    const json* v = Get(key);
    if (!v) return required ? std::optional(Bad(key, "'" + key + "' is required")) : std::nullopt;
    if (!v->is_string()) return Bad(key, "'" + key + "' must be a string");
    *out = v->get<std::string>();
    return std::nullopt;
  }
  std::optional<ApiError> Number(const std::string& key, double lo, double hi, float* out) const {
    const json* v = Get(key);
    if (!v) return std::nullopt;
    if (!v->is_number()) return Bad(key, "'" + key + "' must be a number");
    const double d = v->get<double>();
    if (!(d >= lo && d <= hi)) {
      return Bad(key, "'" + key + "' must be between " + Trim(lo) + " and " + Trim(hi));
    }
    *out = static_cast<float>(d);
    return std::nullopt;
  }
  std::optional<ApiError> Integer(const std::string& key, int64_t lo, int64_t hi,
                                  int64_t* out) const {
    const json* v = Get(key);
    if (!v) return std::nullopt;
    if (!v->is_number_integer()) return Bad(key, "'" + key + "' must be an integer");
    const int64_t i = v->is_number_unsigned() && v->get<uint64_t>() > uint64_t{INT64_MAX}
                          ? INT64_MAX
                          : v->get<int64_t>();
    if (i < lo || i > hi) {
      return Bad(key, "'" + key + "' must be between " + std::to_string(lo) + " and " +
                          std::to_string(hi));
    }
    *out = i;
    return std::nullopt;
  }
  std::optional<ApiError> Bool(const std::string& key, bool* out) const {
    const json* v = Get(key);
    if (!v) return std::nullopt;
    if (!v->is_boolean()) return Bad(key, "'" + key + "' must be true or false");
    *out = v->get<bool>();
    return std::nullopt;
  }
  // A field strata accepts only at the value that changes nothing.
  std::optional<ApiError> Only(const std::string& key, const json& neutral,
                               const std::string& why) const {
    const json* v = Get(key);
    if (v && *v != neutral) return Bad(key, "'" + key + "' " + why);
    return std::nullopt;
  }

 private:
  static std::string Trim(double d) {
    std::string s = std::to_string(d);
    s.erase(s.find_last_not_of('0') + 1);
    if (!s.empty() && s.back() == '.') s.pop_back();
    return s;
  }
  const json& body_;
  std::set<std::string> known_;
};

#define STRATA_API_CHECK(expr)                  \
  do {                                          \
    if (auto strata_err = (expr)) return *strata_err; \
  } while (0)

// Message content: a string, or an array of {"type": "text", "text": ...} parts.
std::optional<ApiError> Content(const json& v, const std::string& param, std::string* out) {
  if (v.is_string()) {
    *out = v.get<std::string>();
    return std::nullopt;
  }
  if (!v.is_array()) return Bad(param, "'" + param + "' must be a string or an array of parts");
  out->clear();
  for (const json& part : v) {
    if (!part.is_object() || !part.contains("type") || !part["type"].is_string()) {
      return Bad(param, "each part of '" + param + "' must be an object with a 'type'");
    }
    const std::string type = part["type"].get<std::string>();
    if (type == "thinking" || type == "redacted_thinking") continue;  // earlier reasoning
    if (type != "text") {
      return Bad(param, "part type '" + type + "' is not supported (text only)");
    }
    if (!part.contains("text") || !part["text"].is_string()) {
      return Bad(param, "a text part of '" + param + "' needs a string 'text'");
    }
    *out += part["text"].get<std::string>();
  }
  return std::nullopt;
}

// A tool's or a call's name: what the APIs allow ([a-zA-Z0-9_-], 1 to 64).
bool ValidToolName(const std::string& name) {
  if (name.empty() || name.size() > 64) return false;
  for (const char c : name) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '-') return false;
  }
  return true;
}

// `tools`: OpenAI's [{"type": "function", "function": {name, description, parameters}}]
// or Anthropic's [{name, description, input_schema}].
std::optional<ApiError> Tools(const json& v, bool anthropic, GenerationRequest* r) {
  if (!v.is_array()) return Bad("tools", "'tools' must be an array");
  for (size_t i = 0; i < v.size(); ++i) {
    const std::string at = anthropic ? "tools." + std::to_string(i) : "tools[" + std::to_string(i) + "]";
    const json& t = v[i];
    if (!t.is_object()) return Bad(at, "'" + at + "' must be an object");
    const json* fn = &t;
    std::string schema_key = "input_schema";
    if (!anthropic) {
      if (t.value("type", "") != "function" || !t.contains("function") || !t["function"].is_object()) {
        return Bad(at, "'" + at + "' must be {\"type\": \"function\", \"function\": {...}}");
      }
      fn = &t["function"];
      schema_key = "parameters";
    } else if (t.contains("type") && t["type"] != "custom") {
      return Bad(at + ".type", "server tools are not supported (custom tools only)");
    }
    for (const auto& [key, value] : fn->items()) {
      if (key != "name" && key != "description" && key != schema_key && key != "strict" &&
          key != "type" && key != "cache_control") {
        return Bad(at + "." + key, "unknown field '" + key + "' in " + at);
      }
    }
    engine::ToolDefinition d;
    if (!fn->contains("name") || !(*fn)["name"].is_string() ||
        !ValidToolName((*fn)["name"].get<std::string>())) {
      return Bad(at + ".name", "'" + at + ".name' must be 1 to 64 of a-z, A-Z, 0-9, _ and -");
    }
    d.name = (*fn)["name"].get<std::string>();
    if (fn->contains("description")) {
      if (!(*fn)["description"].is_string()) return Bad(at + ".description", "must be a string");
      d.description = (*fn)["description"].get<std::string>();
    }
    if (fn->contains(schema_key)) {
      if (!(*fn)[schema_key].is_object()) {
        return Bad(at + "." + schema_key, "'" + schema_key + "' must be a JSON schema object");
      }
      d.parameters = (*fn)[schema_key].dump();
    } else if (anthropic) {
      return Bad(at + ".input_schema", "'input_schema' is required");
    }
    r->tools.push_back(std::move(d));
  }
  return std::nullopt;
}

// `tool_choice`: auto (the default) or none; none keeps the tools from the model.
std::optional<ApiError> ToolChoice(const json* v, bool anthropic, GenerationRequest* r) {
  if (!v) return std::nullopt;
  const std::string choice = anthropic ? (v->is_object() ? v->value("type", "") : "")
                                       : (v->is_string() ? v->get<std::string>() : "");
  if (choice == "none") {
    r->tools.clear();
  } else if (choice != "auto") {
    return Bad("tool_choice", "'tool_choice' must be auto or none (a required or named tool "
                              "is not supported)");
  }
  return std::nullopt;
}

std::optional<ApiError> Stop(const Fields& f, const std::string& key, GenerationRequest* r) {
  const json* v = f.Get(key);
  if (!v) return std::nullopt;
  if (v->is_string()) {
    r->stop = {v->get<std::string>()};
  } else if (v->is_array()) {
    for (const json& s : *v) {
      if (!s.is_string()) return Bad(key, "'" + key + "' must hold strings");
      r->stop.push_back(s.get<std::string>());
    }
  } else {
    return Bad(key, "'" + key + "' must be a string or an array of strings");
  }
  for (const std::string& s : r->stop) {
    if (s.empty()) return Bad(key, "'" + key + "' holds an empty string");
  }
  if (r->stop.size() > 16) return Bad(key, "'" + key + "' holds more than 16 strings");
  return std::nullopt;
}

// The sampling fields both OpenAI endpoints share, with OpenAI's defaults.
std::optional<ApiError> OpenAiSampling(const Fields& f, GenerationRequest* r) {
  engine::SamplerOptions& s = r->sampling;
  s = {.temp = 1.0f, .top_k = 0, .top_p = 1.0f, .min_p = 0.0f};
  STRATA_API_CHECK(f.Number("temperature", 0, 2, &s.temp));
  STRATA_API_CHECK(f.Number("top_p", 0, 1, &s.top_p));
  STRATA_API_CHECK(f.Number("min_p", 0, 1, &s.min_p));
  STRATA_API_CHECK(f.Number("repeat_penalty", 0, 10, &s.repeat_penalty));
  int64_t top_k = 0, seed = -1, n = 1;
  STRATA_API_CHECK(f.Integer("top_k", 0, 1 << 20, &top_k));
  STRATA_API_CHECK(f.Integer("seed", INT64_MIN, INT64_MAX, &seed));
  STRATA_API_CHECK(f.Integer("n", 1, 1, &n));
  s.top_k = static_cast<int32_t>(top_k);
  s.seed = seed < 0 ? -1 : seed;
  STRATA_API_CHECK(f.Only("frequency_penalty", 0, "other than 0 is not supported"));
  STRATA_API_CHECK(f.Only("presence_penalty", 0, "other than 0 is not supported"));
  STRATA_API_CHECK(f.Only("logprobs", false, "is not supported"));
  STRATA_API_CHECK(f.Only("echo", false, "is not supported"));
  STRATA_API_CHECK(f.Only("best_of", 1, "other than 1 is not supported"));
  STRATA_API_CHECK(f.Bool("stream", &r->stream));
  STRATA_API_CHECK(f.Bool("ignore_eos", &r->ignore_eos));
  if (const json* so = f.Get("stream_options")) {
    if (!so->is_object()) return Bad("stream_options", "'stream_options' must be an object");
    for (const auto& [key, value] : so->items()) {
      if (key != "include_usage") return Bad("stream_options." + key, "unknown field '" + key + "'");
      if (!value.is_boolean()) {
        return Bad("stream_options.include_usage", "'include_usage' must be true or false");
      }
      r->include_usage = value.get<bool>();
    }
  }
  return std::nullopt;
}

std::optional<ApiError> MaxTokens(const Fields& f, const std::string& key, GenerationRequest* r) {
  int64_t v = r->max_tokens;
  const json* raw = f.Get(key);
  if (raw && raw->is_number_integer() && raw->get<int64_t>() < 1) {
    return Bad(key, "'" + key + "' must be at least 1");
  }
  STRATA_API_CHECK(f.Integer(key, 1, INT32_MAX, &v));
  r->max_tokens = static_cast<int32_t>(v);
  return std::nullopt;
}

std::optional<ApiError> ParseChat(const json& body, GenerationRequest* r) {
  const Fields f(body, {"model", "messages", "max_tokens", "max_completion_tokens", "temperature",
                        "top_p", "top_k", "min_p", "repeat_penalty", "seed", "stop", "stream",
                        "stream_options", "n", "user", "frequency_penalty", "presence_penalty",
                        "logprobs", "reasoning_effort", "metadata", "store", "response_format", "ignore_eos",
                        "tools", "tool_choice", "parallel_tool_calls"});
  STRATA_API_CHECK(f.Unknown());
  STRATA_API_CHECK(f.String("model", &r->model, true));
  STRATA_API_CHECK(OpenAiSampling(f, r));
  STRATA_API_CHECK(Stop(f, "stop", r));
  STRATA_API_CHECK(MaxTokens(f, "max_tokens", r));
  STRATA_API_CHECK(MaxTokens(f, "max_completion_tokens", r));
  if (const json* tools = f.Get("tools")) STRATA_API_CHECK(Tools(*tools, false, r));
  STRATA_API_CHECK(ToolChoice(f.Get("tool_choice"), false, r));
  if (const json* p = f.Get("parallel_tool_calls"); p && !p->is_boolean()) {
    return Bad("parallel_tool_calls", "'parallel_tool_calls' must be true or false");
  }
  STRATA_API_CHECK(f.Only("store", false, "is not supported"));
  if (const json* rf = f.Get("response_format")) {
    if (!rf->is_object() || rf->value("type", "") != "text") {
      return Bad("response_format", "only {\"type\": \"text\"} is supported");
    }
  }
  if (const json* effort = f.Get("reasoning_effort")) {
    if (!effort->is_string()) return Bad("reasoning_effort", "'reasoning_effort' must be a string");
    const std::string e = effort->get<std::string>();
    if (e != "none" && e != "minimal" && e != "low" && e != "medium" && e != "high") {
      return Bad("reasoning_effort", "'reasoning_effort' must be none, minimal, low, medium or high");
    }
    r->thinking = e != "none" && e != "minimal";
  }
  const json* messages = f.Get("messages");
  if (!messages) return Bad("messages", "'messages' is required");
  if (!messages->is_array()) return Bad("messages", "'messages' must be an array");
  for (size_t i = 0; i < messages->size(); ++i) {
    const json& m = (*messages)[i];
    const std::string at = "messages[" + std::to_string(i) + "]";
    if (!m.is_object()) return Bad(at, "'" + at + "' must be an object");
    for (const auto& [key, value] : m.items()) {
      if (key != "role" && key != "content" && key != "name" && key != "reasoning_content" &&
          key != "tool_calls" && key != "tool_call_id") {
        return Bad(at + "." + key, "unknown field '" + key + "' in " + at);
      }
    }
    if (!m.contains("role") || !m["role"].is_string()) {
      return Bad(at + ".role", "'" + at + ".role' must be a string");
    }
    const std::string role = m["role"].get<std::string>();
    engine::ChatMessage message{role, "", {}, ""};
    const bool calls = role == "assistant" && m.contains("tool_calls") && !m["tool_calls"].is_null();
    const bool has_content = m.contains("content") && !m["content"].is_null();
    if (!has_content && !calls) return Bad(at + ".content", "'" + at + ".content' is required");
    if (has_content) STRATA_API_CHECK(Content(m["content"], at + ".content", &message.content));
    if (calls) {
      const json& tc = m["tool_calls"];
      if (!tc.is_array()) return Bad(at + ".tool_calls", "'tool_calls' must be an array");
      for (size_t k = 0; k < tc.size(); ++k) {
        const std::string cat = at + ".tool_calls[" + std::to_string(k) + "]";
        const json& c = tc[k];
        if (!c.is_object() || !c.contains("function") || !c["function"].is_object() ||
            !c["function"].contains("name") || !c["function"]["name"].is_string() ||
            !c["function"].contains("arguments") || !c["function"]["arguments"].is_string()) {
          return Bad(cat, "'" + cat + "' must be {id, type: function, function: {name, arguments}}");
        }
        const std::string args = c["function"]["arguments"].get<std::string>();
        const json parsed = json::parse(args, nullptr, false);
        if (!parsed.is_object()) {
          return Bad(cat + ".function.arguments", "'arguments' must be a JSON object, as text");
        }
        message.tool_calls.push_back({c.value("id", ""), c["function"]["name"].get<std::string>(), args});
      }
    } else if (m.contains("tool_calls") && !m["tool_calls"].is_null()) {
      return Bad(at + ".tool_calls", "only an assistant message has 'tool_calls'");
    }
    if (role == "system" || role == "developer") {
      r->system += (r->system.empty() ? "" : "\n\n") + message.content;
    } else if (role == "user" || role == "assistant") {
      r->messages.push_back(std::move(message));
    } else if (role == "tool") {
      if (!m.contains("tool_call_id") || !m["tool_call_id"].is_string()) {
        return Bad(at + ".tool_call_id", "a tool message needs a string 'tool_call_id'");
      }
      message.tool_call_id = m["tool_call_id"].get<std::string>();
      r->messages.push_back(std::move(message));
    } else {
      return Bad(at + ".role",
                 "role '" + role + "' is not supported (system, developer, user, assistant, tool)");
    }
  }
  if (r->messages.empty()) return Bad("messages", "'messages' needs a user message");
  return std::nullopt;
}

std::optional<ApiError> ParseCompletion(const json& body, GenerationRequest* r) {
  const Fields f(body, {"model", "prompt", "max_tokens", "temperature", "top_p", "top_k", "min_p",
                        "repeat_penalty", "seed", "stop", "stream", "stream_options", "n", "user",
                        "frequency_penalty", "presence_penalty", "logprobs", "echo", "best_of",
                        "suffix", "ignore_eos"});
  STRATA_API_CHECK(f.Unknown());
  STRATA_API_CHECK(f.String("model", &r->model, true));
  STRATA_API_CHECK(OpenAiSampling(f, r));
  STRATA_API_CHECK(Stop(f, "stop", r));
  r->max_tokens = 16;  // the API's default for this endpoint
  STRATA_API_CHECK(MaxTokens(f, "max_tokens", r));
  STRATA_API_CHECK(f.Only("suffix", nullptr, "is not supported"));
  const json* prompt = f.Get("prompt");
  if (!prompt) return Bad("prompt", "'prompt' is required");
  if (prompt->is_array() && prompt->size() == 1 && (*prompt)[0].is_string()) {
    r->prompt = (*prompt)[0].get<std::string>();
  } else if (prompt->is_string()) {
    r->prompt = prompt->get<std::string>();
  } else {
    return Bad("prompt", "'prompt' must be a string (or an array of one string)");
  }
  return std::nullopt;
}

// An Anthropic message's content: text, and tool_use blocks (assistant) or
// tool_result blocks (user), appended as messages: a tool_result is a "tool" message
// before the user's text.
std::optional<ApiError> AnthropicContent(const json& v, const std::string& role,
                                         const std::string& param,
                                         std::vector<engine::ChatMessage>* out) {
  engine::ChatMessage message{role, "", {}, ""};
  if (!v.is_array()) {
    STRATA_API_CHECK(Content(v, param, &message.content));
    out->push_back(std::move(message));
    return std::nullopt;
  }
  json text_parts = json::array();
  for (size_t k = 0; k < v.size(); ++k) {
    const json& b = v[k];
    const std::string at = param + "." + std::to_string(k);
    const std::string type = b.is_object() ? b.value("type", "") : "";
    if (type == "tool_use" && role == "assistant") {
      if (!b.contains("name") || !b["name"].is_string() || !b.contains("input") || !b["input"].is_object()) {
        return Bad(at, "a tool_use block needs a string 'name' and an object 'input'");
      }
      message.tool_calls.push_back({b.value("id", ""), b["name"].get<std::string>(), b["input"].dump()});
    } else if (type == "tool_result" && role == "user") {
      if (!b.contains("tool_use_id") || !b["tool_use_id"].is_string()) {
        return Bad(at + ".tool_use_id", "a tool_result block needs a string 'tool_use_id'");
      }
      engine::ChatMessage result{"tool", "", {}, b["tool_use_id"].get<std::string>()};
      if (b.contains("content")) STRATA_API_CHECK(Content(b["content"], at + ".content", &result.content));
      out->push_back(std::move(result));
    } else {
      text_parts.push_back(b);
    }
  }
  STRATA_API_CHECK(Content(text_parts, param, &message.content));
  // A user message that only carried tool results adds no user turn.
  if (role == "assistant" || !text_parts.empty() || v.empty()) out->push_back(std::move(message));
  return std::nullopt;
}

std::optional<ApiError> ParseMessages(const json& body, GenerationRequest* r) {
  const Fields f(body, {"model", "messages", "max_tokens", "system", "temperature", "top_p",
                        "top_k", "stop_sequences", "stream", "metadata", "thinking", "tools",
                        "tool_choice", "service_tier"});
  STRATA_API_CHECK(f.Unknown());
  STRATA_API_CHECK(f.String("model", &r->model, true));
  engine::SamplerOptions& s = r->sampling;
  s = {.temp = 1.0f, .top_k = 0, .top_p = 1.0f, .min_p = 0.0f};
  STRATA_API_CHECK(f.Number("temperature", 0, 1, &s.temp));
  STRATA_API_CHECK(f.Number("top_p", 0, 1, &s.top_p));
  int64_t top_k = 0;
  STRATA_API_CHECK(f.Integer("top_k", 0, 1 << 20, &top_k));
  s.top_k = static_cast<int32_t>(top_k);
  if (!f.Get("max_tokens")) return Bad("max_tokens", "'max_tokens' is required");
  STRATA_API_CHECK(MaxTokens(f, "max_tokens", r));
  STRATA_API_CHECK(Stop(f, "stop_sequences", r));
  STRATA_API_CHECK(f.Bool("stream", &r->stream));
  if (const json* tools = f.Get("tools")) STRATA_API_CHECK(Tools(*tools, true, r));
  STRATA_API_CHECK(ToolChoice(f.Get("tool_choice"), true, r));
  if (const json* system = f.Get("system")) STRATA_API_CHECK(Content(*system, "system", &r->system));
  if (const json* thinking = f.Get("thinking")) {
    if (!thinking->is_object() || !thinking->contains("type") || !(*thinking)["type"].is_string()) {
      return Bad("thinking", "'thinking' must be an object with a 'type'");
    }
    const std::string type = (*thinking)["type"].get<std::string>();
    if (type != "enabled" && type != "disabled") {
      return Bad("thinking.type", "'thinking.type' must be enabled or disabled");
    }
    r->thinking = type == "enabled";
  }
  const json* messages = f.Get("messages");
  if (!messages) return Bad("messages", "'messages' is required");
  if (!messages->is_array() || messages->empty()) {
    return Bad("messages", "'messages' must be a non-empty array");
  }
  for (size_t i = 0; i < messages->size(); ++i) {
    const json& m = (*messages)[i];
    const std::string at = "messages." + std::to_string(i);
    if (!m.is_object()) return Bad(at, "'" + at + "' must be an object");
    for (const auto& [key, value] : m.items()) {
      if (key != "role" && key != "content") return Bad(at + "." + key, "unknown field '" + key + "'");
    }
    if (!m.contains("role") || !m["role"].is_string()) {
      return Bad(at + ".role", "'" + at + ".role' must be a string");
    }
    const std::string role = m["role"].get<std::string>();
    if (role != "user" && role != "assistant") {
      return Bad(at + ".role", "role '" + role + "' must be user or assistant");
    }
    if (!m.contains("content")) return Bad(at + ".content", "'" + at + ".content' is required");
    STRATA_API_CHECK(AnthropicContent(m["content"], role, at + ".content", &r->messages));
  }
  if (r->messages.front().role != "user") {
    return Bad("messages.0.role", "the first message must be the user's");
  }
  return std::nullopt;
}

}  // namespace

ParsedRequest ParseRequest(Api api, std::string_view body) {
  ParsedRequest p;
  p.request.api = api;
  const json j = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) {
    p.error = Bad("", "the request body is not valid JSON");
  } else if (!j.is_object()) {
    p.error = Bad("", "the request body must be a JSON object");
  } else if (api == Api::kChat) {
    p.error = ParseChat(j, &p.request);
  } else if (api == Api::kCompletion) {
    p.error = ParseCompletion(j, &p.request);
  } else {
    p.error = ParseMessages(j, &p.request);
  }
  return p;
}

}  // namespace strata::server

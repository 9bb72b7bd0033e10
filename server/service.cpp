#include "server/service.h"

#include <algorithm>
#include <chrono>
#include <cstdio>

#include <nlohmann/json.hpp>

#include "server/answer.h"
#include "server/api_response.h"

namespace strata::server {
namespace {

constexpr std::string_view kJson = "application/json";

int64_t UnixNow() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

uint64_t Ns(double s) { return static_cast<uint64_t>(s * 1e9); }

// The error types each API uses for a status.
std::string ErrorType(Api api, int status) {
  const bool anthropic = api == Api::kMessages;
  switch (status) {
    case 401:
      return anthropic ? "authentication_error" : "invalid_api_key";
    case 404:
      return anthropic ? "not_found_error" : "invalid_request_error";
    case 413:
      return anthropic ? "request_too_large" : "invalid_request_error";
    case 429:
      return anthropic ? "rate_limit_error" : "rate_limit_exceeded";
    default:
      return status >= 500 ? (anthropic ? "api_error" : "server_error") : "invalid_request_error";
  }
}

}  // namespace

Service::Service(engine::TieredModel& model, const Prompter& prompter, Scheduler& scheduler,
                 ServiceOptions options)
    : model_(model), prompter_(prompter), scheduler_(scheduler), options_(std::move(options)) {}

ServiceCounters Service::counters() const {
  std::lock_guard lock(mu_);
  return counters_;
}

bool Service::Authorized(const HttpRequest& r) const {
  if (options_.api_key.empty()) return true;
  return r.header("authorization") == "Bearer " + options_.api_key ||
         r.header("x-api-key") == options_.api_key;
}

void Service::Error(Api api, const ApiError& error, ResponseWriter& writer) {
  {
    std::lock_guard lock(mu_);
    ++counters_.rejected;
  }
  writer.Send(error.status, kJson, ErrorBody(api, error));
}

void Service::Handle(const HttpRequest& r, ResponseWriter& writer) {
  const Api api = r.path == "/v1/messages" ? Api::kMessages
                  : r.path == "/v1/completions" ? Api::kCompletion
                                                : Api::kChat;
  if (r.path == "/health") {
    writer.Send(200, kJson, R"({"status":"ok"})");
    return;
  }
  if (!Authorized(r)) {
    Error(api, {401, ErrorType(api, 401), "a valid API key is required (Authorization: Bearer or x-api-key)", ""},
          writer);
    return;
  }
  const bool generation =
      r.path == "/v1/chat/completions" || r.path == "/v1/completions" || r.path == "/v1/messages";
  if (generation && r.method == "POST") return Generate(api, r, writer);
  if (r.path == "/v1/models" && r.method == "GET") {
    const nlohmann::json model = {{"id", options_.model_id},
                                  {"object", "model"},
                                  {"type", "model"},
                                  {"display_name", options_.model_id},
                                  {"created", 0},
                                  {"created_at", "1970-01-01T00:00:00Z"},
                                  {"owned_by", "strata"}};
    writer.Send(200, kJson,
                nlohmann::json{{"object", "list"},
                               {"data", {model}},
                               {"has_more", false},
                               {"first_id", options_.model_id},
                               {"last_id", options_.model_id}}
                    .dump());
    return;
  }
  if (r.path == "/metrics" && r.method == "GET") {
    writer.Send(200, "text/plain; version=0.0.4", Metrics());
    return;
  }
  const bool known = generation || r.path == "/v1/models" || r.path == "/metrics";
  Error(api,
        {known ? 405 : 404, ErrorType(api, 404),
         known ? r.method + " is not allowed on " + r.path : "no endpoint " + r.path, ""},
        writer);
}

void Service::Generate(Api api, const HttpRequest& r, ResponseWriter& writer) {
  ParsedRequest parsed = ParseRequest(api, r.body);
  if (parsed.error) return Error(api, *parsed.error, writer);
  const GenerationRequest& req = parsed.request;
  if (req.model != options_.model_id) {
    return Error(api,
                 {404, ErrorType(api, 404),
                  "model '" + req.model + "' is not served here (GET /v1/models lists '" +
                      options_.model_id + "')",
                  "model"},
                 writer);
  }
  const bool tool_messages = std::any_of(req.messages.begin(), req.messages.end(), [](const auto& m) {
    return m.role == "tool" || !m.tool_calls.empty();
  });
  if ((!req.tools.empty() || tool_messages) && !prompter_.SupportsTools()) {
    return Error(api,
                 {400, ErrorType(api, 400),
                  "tool calls need a chat template with a tool format (deepseek3.1); this model's "
                  "is " + prompter_.template_name(),
                  req.tools.empty() ? "messages" : "tools"},
                 writer);
  }
  std::vector<int32_t> prompt = prompter_.Tokens(req);
  if (prompt.size() + 1 > scheduler_.n_ctx()) {
    return Error(api,
                 {400, ErrorType(api, 400),
                  "the prompt has " + std::to_string(prompt.size()) + " tokens; the context holds " +
                      std::to_string(scheduler_.n_ctx()) + " (the server's -c/--ctx-size)",
                  api == Api::kCompletion ? "prompt" : "messages"},
                 writer);
  }
  if (stopping_) {
    return Error(api, {503, ErrorType(api, 503), "the server is shutting down", ""}, writer);
  }
  const int32_t prompt_tokens = static_cast<int32_t>(prompt.size());
  auto g = std::make_shared<Generation>(std::move(prompt), req.sampling, req.max_tokens,
                                        req.ignore_eos);
  if (Status s = scheduler_.Submit(g); !s.ok()) {
    const int status = s.code() == StatusCode::kResourceExhausted ? 429
                       : s.code() == StatusCode::kCancelled       ? 503
                                                                  : 400;
    return Error(api, {status, ErrorType(api, status), s.message(), ""}, writer);
  }
  uint64_t id = 0;
  {
    std::lock_guard lock(mu_);
    id = ++ids_;
  }

  const std::string prefix = api == Api::kMessages     ? "msg_strata_"
                             : api == Api::kCompletion ? "cmpl-strata-"
                                                       : "chatcmpl-strata-";
  auto formatter = ResponseFormatter::For(req, prefix + std::to_string(id), options_.model_id,
                                          UnixNow(), prompt_tokens);
  bool client_ok = true;
  if (req.stream) client_ok = writer.StartStream(200, "text/event-stream") && writer.Write(formatter->Begin());
  GenerationResult result;
  const engine::ToolMarkers* markers = req.tools.empty() ? nullptr : &prompter_.tool_markers();
  const Status status = StreamAnswer(
      *g, req, prompter_.tokenizer(), prompter_.StartsThinking(req),
      [&](std::string_view text, bool reasoning) {
        const std::string piece = formatter->Text(text, reasoning);
        if (req.stream && client_ok) client_ok = writer.Write(piece);
        if (!req.stream && client_ok) client_ok = !writer.ClientGone();
        return client_ok && !stopping_;
      },
      [&] { return client_ok && !stopping_ && !writer.ClientGone(); }, &result, markers,
      [&](const engine::ToolCall& call, int index) {
        const std::string piece = formatter->ToolCall(call, index);
        if (req.stream && client_ok) client_ok = writer.Write(piece);
        return client_ok && !stopping_;
      });
  {
    std::lock_guard lock(mu_);
    ++counters_.requests;
    counters_.prompt_tokens += static_cast<uint64_t>(result.prompt_tokens);
    counters_.cached_tokens += static_cast<uint64_t>(result.cached_tokens);
    counters_.completion_tokens += static_cast<uint64_t>(result.completion_tokens);
    counters_.prefill_ns += Ns(result.prefill_s);
    counters_.decode_ns += Ns(result.decode_s);
    if (result.finish_reason == "cancelled") ++counters_.cancelled;
  }
  if (!status.ok()) {
    const ApiError e{500, ErrorType(api, 500), status.ToString(), ""};
    if (!req.stream) return Error(api, e, writer);
    writer.Write(SseEvent(api == Api::kMessages ? "error" : "", ErrorBody(api, e)));
    writer.Finish();
    return;
  }
  if (!req.stream) {
    writer.Send(200, kJson, formatter->End(result));
  } else if (client_ok) {
    writer.Write(formatter->End(result));
    writer.Finish();
  }
}

std::string Service::Metrics() const {
  const ServiceCounters c = counters();
  const tiers::CacheStats e = model_.cache().stats();
  const tiers::EngramStats g = model_.engram_stats();
  const SchedulerStats q = scheduler_.stats();
  std::string out;
  auto metric = [&](const char* name, const char* type, const char* help, double value) {
    char line[160];
    std::snprintf(line, sizeof line, "%.17g", value);
    out += std::string("# HELP strata_") + name + " " + help + "\n# TYPE strata_" + name + " " +
           type + "\nstrata_" + name + " " + line + "\n";
  };
  metric("requests_total", "counter", "Generation requests answered.", double(c.requests));
  metric("rejected_total", "counter", "Requests answered with an error.", double(c.rejected));
  metric("cancelled_total", "counter", "Generations stopped because the client left.",
         double(c.cancelled));
  metric("queue_waiting", "gauge", "Requests waiting for a slot.", double(q.waiting));
  metric("slots", "gauge", "Slots (sequences that decode together).", double(scheduler_.slots()));
  metric("slots_busy", "gauge", "Slots generating now.", double(q.busy));
  metric("decode_steps_total", "counter", "Decode steps (each one token of every busy slot).",
         double(q.steps));
  metric("decode_step_tokens_total", "counter",
         "Tokens decoded by those steps (divided by the steps: the mean batch).",
         double(q.step_tokens));
  metric("prefill_tokens_total", "counter", "Prompt tokens prefilled.", double(q.prefill_tokens));
  metric("prompt_tokens_from_disk_total", "counter",
         "Prompt tokens whose state was loaded from the prompt cache on disk.",
         double(q.loaded_tokens));
  if (options_.store) {
    const PromptStoreStats d = options_.store->stats();
    metric("prompt_cache_entries", "gauge", "Prompt cache entries on disk.", double(d.entries));
    metric("prompt_cache_bytes", "gauge", "Bytes of those entries.", double(d.bytes));
    metric("prompt_cache_hits_total", "counter", "Lookups that loaded a stored prefix.",
           double(d.hits));
    metric("prompt_cache_misses_total", "counter", "Lookups that found none.", double(d.misses));
    metric("prompt_cache_writes_total", "counter", "Entries written.", double(d.writes));
    metric("prompt_cache_written_bytes_total", "counter", "Bytes written.",
           double(d.bytes_written));
    metric("prompt_cache_evictions_total", "counter", "Entries deleted for the byte budget.",
           double(d.evictions));
    metric("prompt_cache_bad_files_total", "counter", "Entries that failed a check (deleted).",
           double(d.bad_files));
  }
  metric("prompt_tokens_total", "counter", "Prompt tokens of generation requests.",
         double(c.prompt_tokens));
  metric("prompt_tokens_cached_total", "counter",
         "Prompt tokens reused from the prompt cache instead of prefilled.",
         double(c.cached_tokens));
  metric("completion_tokens_total", "counter", "Generated tokens.", double(c.completion_tokens));
  metric("time_to_first_token_seconds_total", "counter", "Prefill time, summed over requests.",
         double(c.prefill_ns) * 1e-9);
  metric("decode_seconds_total", "counter", "Decode time, summed over requests.",
         double(c.decode_ns) * 1e-9);
  metric("decode_tokens_per_second", "gauge", "Generated tokens per second of decode, overall.",
         c.decode_ns ? double(c.completion_tokens) / (double(c.decode_ns) * 1e-9) : 0.0);
  metric("expert_demands_total", "counter", "Routed-expert uses asked of the expert cache.",
         double(e.demands));
  metric("expert_hits_total", "counter", "Routed-expert uses found resident.", double(e.hits));
  metric("expert_read_bytes_total", "counter", "Bytes read from disk for experts.",
         double(e.bytes_read));
  metric("expert_stall_seconds_total", "counter", "Time decode waited for expert reads.",
         double(e.stall_ns) * 1e-9);
  metric("expert_read_mib_per_token", "gauge", "Expert MiB read per generated token, overall.",
         c.completion_tokens ? double(e.bytes_read) / (1 << 20) / double(c.completion_tokens) : 0.0);
  metric("engram_rows_total", "counter", "Engram rows asked of the row cache.", double(g.lookups));
  metric("engram_row_hits_total", "counter", "Engram rows found resident or in flight.",
         double(g.hits + g.inflight_hits));
  metric("engram_read_bytes_total", "counter", "Bytes read from disk for Engram rows.",
         double(g.bytes_read));
  return out;
}

}  // namespace strata::server

// The endpoints of `strata serve` over one model: routing, the API key, handing
// generations to the scheduler (server/scheduler.h: N slots decoding together, a
// queue beyond them; a full queue is a 429), streaming their answers, and the
// metrics. POST /v1/chat/completions, /v1/completions (OpenAI) and /v1/messages
// (Anthropic), GET /v1/models, /health and /metrics (Prometheus text). A client that
// disconnects stops its generation at the next token, or leaves the queue.
// Thread-safe: connection threads call Handle at once.
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>

#include "engine/tiered_model.h"
#include "server/api_request.h"
#include "server/http_server.h"
#include "server/prompt.h"
#include "server/scheduler.h"

namespace strata::server {

struct ServiceOptions {
  std::string model_id;  // what /v1/models lists and requests must name
  std::string api_key;   // "" = no key needed
  const PromptStore* store = nullptr;  // the prompt cache on disk, for /metrics
};

// Running totals, as /metrics reports them.
struct ServiceCounters {
  uint64_t requests = 0;           // generation requests answered (any outcome)
  uint64_t rejected = 0;           // 4xx/5xx answers
  uint64_t prompt_tokens = 0;      // prompt tokens of generation requests
  uint64_t cached_tokens = 0;      // of those, reused from a slot instead of prefilled
  uint64_t completion_tokens = 0;
  uint64_t prefill_ns = 0;         // time to first token, summed
  uint64_t decode_ns = 0;
  uint64_t cancelled = 0;          // stopped because the client went away
};

class Service {
 public:
  Service(engine::TieredModel& model, const Prompter& prompter, Scheduler& scheduler,
          ServiceOptions options);

  void Handle(const HttpRequest& request, ResponseWriter& writer);
  // Makes running generations stop at their next token (server shutdown).
  void Shutdown() { stopping_ = true; }
  ServiceCounters counters() const;

 private:
  void Generate(Api api, const HttpRequest& request, ResponseWriter& writer);
  void Error(Api api, const ApiError& error, ResponseWriter& writer);
  std::string Metrics() const;
  bool Authorized(const HttpRequest& request) const;

  engine::TieredModel& model_;
  const Prompter& prompter_;
  Scheduler& scheduler_;
  const ServiceOptions options_;
  std::atomic<bool> stopping_{false};
  mutable std::mutex mu_;  // guards the counters
  ServiceCounters counters_;
  uint64_t ids_ = 0;
};

}  // namespace strata::server

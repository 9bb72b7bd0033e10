#include "tools/serve.h"

#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <regex>
#include <thread>

#include "server/http_server.h"
#include "server/service.h"
#include "server/prompt.h"
#include "server/prompt_store.h"
#include "server/scheduler.h"
#include "util/cancel.h"
#include "util/size_parse.h"

namespace strata::tools {
namespace {

// "models/V3-Q2-00001-of-00004.gguf" -> "V3-Q2".
std::string ModelId(const std::string& path) {
  std::string stem = std::filesystem::path(path).filename().string();
  if (stem.size() > 5 && stem.ends_with(".gguf")) stem.resize(stem.size() - 5);
  static const std::regex kShard("-[0-9]{5}-of-[0-9]{5}$");
  return std::regex_replace(stem, kShard, "");
}

}  // namespace

Status RunServe(const ServeCliOptions& o) {
  if (o.think != "on" && o.think != "off") {
    return Status::InvalidArgument("--think must be on or off, not '" + o.think + "'");
  }
  STRATA_ASSIGN_OR_RETURN(uint64_t max_body, ParseSize(o.max_body));
  if (max_body < 1024) return Status::InvalidArgument("--max-body must be at least 1K");
  std::string api_key = o.api_key;
  if (api_key.empty()) {
    if (const char* env = std::getenv("STRATA_API_KEY")) api_key = env;
  }
  ChatModelFlags flags = o.model;
  flags.sequences = o.parallel;  // the budget holds every slot's KV cache
  STRATA_ASSIGN_OR_RETURN(ChatModel m, OpenChatModel(flags, /*progress=*/false));
  std::signal(SIGPIPE, SIG_IGN);  // a client that hangs up is a failed write, not a signal
  const server::Prompter prompter(*m.tokenizer, m.chat_template, o.think == "on");
  std::unique_ptr<server::PromptStore> store;
  if (!o.prompt_cache_dir.empty()) {
    Result<uint64_t> bytes_or = ParseSize(o.prompt_cache_size);
    if (!bytes_or.ok()) return bytes_or.status().WithContext("--prompt-cache-size");
    const uint64_t bytes = *bytes_or;
    const engine::ModelFile& file = m.tiered->model().file();
    const uint64_t key = server::PromptStoreModelKey(
        file.gguf(), [&](const std::string& name) { return file.Data(name); }, m.kv_type);
    STRATA_ASSIGN_OR_RETURN(store, server::PromptStore::Open({.dir = o.prompt_cache_dir,
                                                              .max_bytes = bytes,
                                                              .model_key = key}));
  }
  server::Scheduler scheduler(*m.tiered, {.slots = o.parallel,
                                          .n_ctx = o.model.ctx_size,
                                          .kv_type = m.kv_type,
                                          .batch = o.model.batch_size,
                                          .session = {.threads = o.model.threads,
                                                      .prefetch = m.prefetch,
                                                      .lookahead = o.model.tiers.lookahead},
                                          .max_queue = o.max_queue,
                                          .eos = m.tokenizer->eos(),
                                          .store = store.get(),
                                          .store_min_tokens = o.prompt_cache_min});
  const std::string id = o.alias.empty() ? ModelId(o.model.model) : o.alias;
  server::Service service(*m.tiered, prompter, scheduler,
                          {.model_id = id, .api_key = api_key, .store = store.get()});
  STRATA_ASSIGN_OR_RETURN(
      auto http, server::HttpServer::Start(
                     {.host = o.host, .port = o.port, .body_limit = max_body},
                     [&](const server::HttpRequest& r, server::ResponseWriter& w) {
                       service.Handle(r, w);
                     }));
  std::string cache;
  if (store) {
    const server::PromptStoreStats st = store->stats();
    cache = ", prompt cache " + o.prompt_cache_dir + " (" + std::to_string(st.entries) +
            " entries, " + FormatBytes(st.bytes) + ")";
  }
  std::printf(
      "strata serve: listening on http://%s:%u (model '%s', template %s, %u slot%s of context %u, "
      "%s%s%s)\n",
      o.host.c_str(), http->port(), id.c_str(), m.chat_template.name.c_str(), o.parallel,
      o.parallel == 1 ? "" : "s", o.model.ctx_size, m.tiered->TierSummary().c_str(),
      cache.c_str(), api_key.empty() ? "" : ", API key required");
  std::fflush(stdout);
  while (!InterruptRequested()) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  service.Shutdown();
  http->Stop();
  scheduler.Stop();
  if (store) store->Flush();
  const server::ServiceCounters c = service.counters();
  std::printf("strata serve: stopped after %llu generations (%llu requests refused), %llu "
              "prompt tokens (%llu from the prompt cache), %llu generated\n",
              static_cast<unsigned long long>(c.requests),
              static_cast<unsigned long long>(c.rejected),
              static_cast<unsigned long long>(c.prompt_tokens),
              static_cast<unsigned long long>(c.cached_tokens),
              static_cast<unsigned long long>(c.completion_tokens));
  return Status::Ok();
}

}  // namespace strata::tools

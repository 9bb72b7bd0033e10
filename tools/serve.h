// `strata serve`: an OpenAI- and Anthropic-compatible HTTP server over one model
// (server/service.h), with every tier flag `run` takes and --parallel N slots that
// decode together (server/scheduler.h); -c is each slot's context. Binds 127.0.0.1:8080 unless
// told otherwise; --api-key (or STRATA_API_KEY) requires a key on /v1/*. Prints one
// line with the address once it listens; Ctrl-C (or SIGTERM) stops it: running
// generations end at their next token, connections close, and the totals are printed.
#pragma once

#include <cstdint>
#include <string>

#include "tools/chat_model.h"
#include "util/status.h"

namespace strata::tools {

struct ServeCliOptions {
  ChatModelFlags model;
  std::string host = "127.0.0.1";
  uint16_t port = 8080;
  std::string api_key;      // "" = none (or STRATA_API_KEY)
  std::string alias;        // the model id clients name; "" = the file's name
  uint32_t parallel = 1;    // slots: sequences decoding together
  uint32_t max_queue = 16;  // requests waiting for a slot before 429
  std::string max_body = "8M";
  std::string think = "on";  // hybrid templates' default when a request does not say
  std::string prompt_cache_dir;               // "" = no prompt cache on disk
  std::string prompt_cache_size = "8G";       // its byte budget for this model
  uint32_t prompt_cache_min = 256;            // shorter sequences are not stored
};

Status RunServe(const ServeCliOptions& options);

}  // namespace strata::tools

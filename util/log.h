// One named spdlog logger per module ("storage", "tiers", "prefetch", "engine",
// "tools"). Library code logs through these and never writes to stderr itself.
// Nothing logs per token or per I/O in hot paths. Thread-safe.
#pragma once

#include <spdlog/spdlog.h>

#include <string>

namespace strata {

enum class LogModule { kStorage, kTiers, kPrefetch, kEngine, kTools };

// The logger of `module`; created on first use with the current global settings.
spdlog::logger& Log(LogModule module);

struct LogOptions {
  bool verbose = false;  // debug level instead of warnings and above
  std::string file;      // also append every message to this file if non-empty
};

// Applies `options` to every module's logger. Call once from main before any work.
void ConfigureLogging(const LogOptions& options);

}  // namespace strata

#include "util/log.h"

#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>

#include <array>
#include <memory>
#include <mutex>

namespace strata {
namespace {

constexpr std::array<const char*, 5> kModuleNames = {"storage", "tiers", "prefetch", "engine",
                                                     "tools"};

struct Registry {
  std::mutex mu;
  std::vector<spdlog::sink_ptr> sinks;
  spdlog::level::level_enum level = spdlog::level::warn;
  std::array<std::shared_ptr<spdlog::logger>, kModuleNames.size()> loggers;
};

Registry& GetRegistry() {
  static Registry* registry = [] {
    auto* r = new Registry;
    auto err = std::make_shared<spdlog::sinks::stderr_color_sink_mt>();
    err->set_pattern("strata %n %^%l%$: %v");
    r->sinks.push_back(err);
    return r;
  }();
  return *registry;
}

std::shared_ptr<spdlog::logger> MakeLogger(Registry& r, size_t idx) {
  auto logger = std::make_shared<spdlog::logger>(kModuleNames[idx], r.sinks.begin(), r.sinks.end());
  logger->set_level(r.level);
  return logger;
}

}  // namespace

spdlog::logger& Log(LogModule module) {
  Registry& r = GetRegistry();
  const auto idx = static_cast<size_t>(module);
  std::lock_guard<std::mutex> lock(r.mu);
  if (!r.loggers[idx]) r.loggers[idx] = MakeLogger(r, idx);
  return *r.loggers[idx];
}

void ConfigureLogging(const LogOptions& options) {
  Registry& r = GetRegistry();
  std::lock_guard<std::mutex> lock(r.mu);
  r.level = options.verbose ? spdlog::level::debug : spdlog::level::warn;
  if (!options.file.empty()) {
    auto file = std::make_shared<spdlog::sinks::basic_file_sink_mt>(options.file);
    file->set_pattern("%Y-%m-%d %H:%M:%S.%e %n %l: %v");
    file->set_level(spdlog::level::debug);
    r.sinks.push_back(file);
  }
  for (size_t i = 0; i < r.loggers.size(); ++i) r.loggers[i] = MakeLogger(r, i);
}

}  // namespace strata

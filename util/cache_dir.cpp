#include "util/cache_dir.h"

#include <cstdlib>

namespace strata {

std::string CacheDir() {
  if (const char* env = std::getenv("STRATA_CACHE_DIR"); env && *env) return env;
  if (const char* xdg = std::getenv("XDG_CACHE_HOME"); xdg && *xdg)
    return std::string(xdg) + "/strata";
  if (const char* home = std::getenv("HOME"); home && *home)
    return std::string(home) + "/.cache/strata";
  return "";
}

}  // namespace strata

#include "tests/ggml/ggml_library.h"

#include <dlfcn.h>

#include <cstdlib>
#include <filesystem>

namespace strata::testing {
namespace {

std::string CacheDir() {
  if (const char* c = std::getenv("STRATA_CACHE_DIR"); c && *c) return c;
  if (const char* x = std::getenv("XDG_CACHE_HOME"); x && *x) return std::string(x) + "/strata";
  const char* home = std::getenv("HOME");
  return std::string(home ? home : "") + "/.cache/strata";
}

template <typename Fn>
bool Symbol(void* handle, const char* name, Fn* out, std::string* error) {
  *out = reinterpret_cast<Fn>(dlsym(handle, name));
  if (!*out) *error = std::string("missing symbol ") + name;
  return *out != nullptr;
}

GgmlLibrary* Load(std::string* error) {
  auto* lib = new GgmlLibrary;
  lib->dir = CacheDir() + "/llama-cpp/lib";
  const std::string base = lib->dir + "/libggml-base.so";
  // RTLD_GLOBAL: the CPU variants resolve libggml-base.so's symbols through it.
  void* h = dlopen(base.c_str(), RTLD_NOW | RTLD_GLOBAL);
  if (!h) {
    *error = "cannot open " + base + " (run scripts/setup.sh): " + dlerror();
    return nullptr;
  }
  if (!Symbol(h, "ggml_get_type_traits", &lib->get_type_traits, error) ||
      !Symbol(h, "ggml_quantize_chunk", &lib->quantize_chunk, error) ||
      !Symbol(h, "ggml_quantize_requires_imatrix", &lib->quantize_requires_imatrix, error)) {
    return nullptr;
  }
  int best_score = 0;
  void* best = nullptr;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(lib->dir, ec)) {
    const std::string name = entry.path().filename();
    if (name.rfind("libggml-cpu-", 0) != 0 || name == "libggml-cpu-sapphirerapids.so") continue;
    void* v = dlopen(entry.path().c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!v) continue;
    auto score = reinterpret_cast<int (*)()>(dlsym(v, "ggml_backend_score"));
    const int s = score ? score() : 0;
    if (s > best_score) {
      best_score = s;
      best = v;
      lib->cpu_variant = name;
    }
  }
  if (!best) {
    *error = "no usable libggml-cpu-*.so in " + lib->dir;
    return nullptr;
  }
  void (*cpu_init)() = nullptr;
  if (!Symbol(best, "ggml_cpu_init", &cpu_init, error) ||
      !Symbol(best, "ggml_get_type_traits_cpu", &lib->get_type_traits_cpu, error)) {
    return nullptr;
  }
  cpu_init();
  return lib;
}

}  // namespace

const GgmlLibrary* LoadGgml(std::string* error) {
  static std::string load_error;
  static const GgmlLibrary* lib = Load(&load_error);
  if (!lib && error) *error = load_error;
  return lib;
}

}  // namespace strata::testing

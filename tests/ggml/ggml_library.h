// llama.cpp's own prebuilt libraries (npm @node-llama-cpp/linux-x64, fetched by
// scripts/setup.sh into $STRATA_CACHE_DIR/llama-cpp), opened at run time: the
// independent reference strata's formats and kernels are checked against. The CPU
// variant is the one ggml's own loader would pick (highest ggml_backend_score), except
// libggml-cpu-sapphirerapids.so, which aborts on deepseek2's MLA graph
// (GGML_ASSERT(*cur_backend_id != -1) in ggml-backend.cpp).
#pragma once

#include <string>

#include "ggml-cpu.h"
#include "ggml.h"

namespace strata::testing {

struct GgmlLibrary {
  std::string dir;          // the folder of .so files
  std::string cpu_variant;  // file name of the CPU backend chosen
  const ggml_type_traits* (*get_type_traits)(ggml_type) = nullptr;
  size_t (*quantize_chunk)(ggml_type, const float*, void*, int64_t, int64_t, int64_t, const float*) = nullptr;
  bool (*quantize_requires_imatrix)(ggml_type) = nullptr;
  const ggml_type_traits_cpu* (*get_type_traits_cpu)(ggml_type) = nullptr;
};

// The loaded library, or nullptr with `error` saying why (missing folder, file, symbol).
const GgmlLibrary* LoadGgml(std::string* error);

}  // namespace strata::testing

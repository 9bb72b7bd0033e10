// `strata make-model`: writes a deterministic deepseek2 GGUF with real shapes, the
// exact llama.cpp key and tensor names, normally distributed weights quantised by real
// quantisers, and (when available) the real DeepSeek-V3 tokenizer.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "engine/deepseek2_config.h"
#include "storage/ggml_types.h"
#include "util/status.h"

namespace strata::tools {

struct MakeModelOptions {
  std::string preset = "tiny";  // tiny | small | v2lite | engram-tiny | engram-big
  std::string output;
  uint64_t seed = 42;
  std::optional<storage::GgmlType> type;  // default: the preset's
  std::optional<uint32_t> layers;
  std::optional<uint32_t> experts;
  std::optional<uint32_t> hidden;
  double routing_skew = 0.0;
  // Engram presets: rows per table (0: the preset's), row encoding and module form
  // (empty: the preset's).
  uint64_t engram_rows = 0;
  std::string engram_encoding;
  std::string engram_module;
  // Path of a Hugging Face tokenizer.json, "none" for the fallback byte vocabulary,
  // or empty for the default (the cached DeepSeek-V3 tokenizer when present; the
  // tiny preset defaults to the fallback to stay a few MB).
  std::string tokenizer;
  unsigned threads = 0;  // 0: hardware concurrency
  bool progress = true;
  // > 0: write a split set (llama.cpp's gguf-split layout) of shards of at most this
  // many bytes of tensor data each, OUTPUT minus ".gguf" being the shard prefix.
  uint64_t split_max_size = 0;
  // A published file's per-tensor types (tools/quant_recipe.h); excludes `type`.
  std::string recipe;
};

struct MakeModelReport {
  std::vector<std::string> files;  // what was written: OUTPUT, or the shards
  uint64_t file_bytes = 0;
  double seconds = 0;
  std::string tokenizer_source;
};

std::vector<std::string> PresetNames();
// The preset's hyperparameters with the option overrides applied, validated.
Result<engine::Deepseek2Config> PresetConfig(const MakeModelOptions& options);
storage::GgmlType PresetDefaultType(const std::string& preset);

// The GGML type a tensor of role `role` and row length `ne0` is stored in when the
// model's type is `type`: norms and routers stay F32; a row the type's block does not
// divide falls back as llama.cpp does (Q4_K -> Q5_0, Q5_K -> Q5_1, Q2_K/Q3_K -> Q4_0,
// Q6_K -> Q8_0, the 256-value IQ types -> IQ4_NL).
storage::GgmlType StorageTypeFor(storage::GgmlType type, int role, uint64_t ne0);

// Where setup caches the DeepSeek-V3 tokenizer.json, if it is there.
std::string DefaultTokenizerPath();

Result<MakeModelReport> MakeModel(const MakeModelOptions& options);

}  // namespace strata::tools

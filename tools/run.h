// `strata run`: one-shot generation. Loads a deepseek2 GGUF, prefills the prompt in
// chunks, decodes token by token while streaming text, and ends with one report line
// (prompt and generated tokens with their tok/s, time to first token, peak RSS) and
// the tier line (mode, budget, hit rate, MiB read and stall per decoded token).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "engine/sampler.h"
#include "tools/tier_flags.h"
#include "util/status.h"

namespace strata::tools {

struct RunOptions {
  std::string model;
  std::string prompt;
  std::string prompt_file;
  int32_t n_predict = 128;  // -1: until EOS or the context is full
  uint32_t ctx_size = 4096;
  int64_t batch_size = 512;
  unsigned threads = 0;
  std::string cache_type = "f16";
  engine::SamplerOptions sampling;
  std::vector<std::string> stop;
  std::string logits_out;  // empty: none
  bool parse_special = true;
  bool add_bos = true;
  bool ignore_eos = false;
  bool report = true;
  TierFlags tiers;
};

Status RunGenerate(const RunOptions& options);

struct TokenizeOptions {
  std::string model;
  std::string prompt;
  std::string prompt_file;
  bool ids_only = false;
  bool add_bos = true;
  bool parse_special = true;
};

// Prints the token ids of the text ("[1, 2, 3]" with --ids, else "id<TAB>'piece'" per
// line). Reads only the model's header, never its weights.
Status RunTokenize(const TokenizeOptions& options);

}  // namespace strata::tools

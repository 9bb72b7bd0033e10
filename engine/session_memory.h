// What one sequence costs in RAM beyond the weights: its KV state for `n_ctx` tokens
// (the MLA latent cache, or V4's windows and compressed entries), and the scratch a
// prefill chunk of `batch` tokens needs at that context (activations, attention
// scores, routed-expert buffers, V4's undo log). TieredModel reserves this from the
// RAM budget before sizing the expert cache, so the budget is a ceiling for the whole
// process, not only for the weights. The figures are upper bounds, checked by a test
// that counts every allocation a session makes. Pure.
#pragma once

#include <cstdint>
#include <string>

#include "engine/deepseek2_config.h"
#include "storage/ggml_types.h"

namespace strata::engine {

// MLA prefill takes attention scores in token sub-batches of about this many floats
// (16 MiB), at least one token's: the scratch stays small whatever the chunk.
inline constexpr int64_t kScoreFloats = int64_t{4} << 20;

struct SessionShape {
  uint32_t n_ctx = 4096;
  int64_t batch = 512;  // prefill chunk (-b)
  storage::GgmlType kv_type = storage::GgmlType::kF16;
  unsigned threads = 0;  // 0: this machine's default
  uint32_t n_seq = 1;    // sequences (each its own KV cache and attention buffers)
};

struct SessionMemory {
  uint64_t kv_bytes = 0;       // grows with n_ctx only
  uint64_t scratch_bytes = 0;  // grows with batch, and with n_ctx through attention rows
  uint64_t total() const { return kv_bytes + scratch_bytes; }
};

SessionMemory EstimateSessionMemory(const Deepseek2Config& config, const SessionShape& shape);

// "-c 16384 -b 512: KV cache 1.07 GiB + scratch 612 MiB"
std::string DescribeSession(const SessionShape& shape, const SessionMemory& m);

}  // namespace strata::engine

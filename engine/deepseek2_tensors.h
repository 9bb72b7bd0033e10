// The tensor plan of a deepseek2 or deepseek4 model: every tensor's name, shape (GGML
// ne order) and role, as llama.cpp names and shapes them (docs/GGUF.md §2.2, §3.2). make-model writes
// exactly this list; the loader checks a file against it. Pure; thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "engine/deepseek2_config.h"

namespace strata::engine {

enum class TensorRole {
  kNorm,         // RMSNorm weight: F32, values near 1
  kEmbedding,    // token_embd
  kOutput,       // output head
  kMatrix,       // a dense projection (attention, dense FFN, shared experts)
  kRouter,       // ffn_gate_inp: F32 in real files
  kRouterBias,   // exp_probs_b.bias: F32
  kExpertStack,  // ffn_{gate,up,down}_exps: [in, out, n_expert]
  kHyperFn,      // mHC projections (hc_*_fn): F16 in real files
  kHyperParam,   // mHC base and scale: F32
  kBias,         // Engram demo-form projection biases: F32
  kConv,         // Engram demo-form depthwise conv taps: F32
  kEngramTable,  // engram_embd: rows in the model's Engram encoding
  kSideMatrix,   // V4 compressor and indexer projections: F16 as ds4 ships them
  kSinks,        // V4 attn_sinks: one logit per head, F32
  kApe,          // V4 compressor position biases: F32
  kHashTable,    // V4 ffn_gate_tid2eid: I32 expert ids [top-k, vocab]
};

struct TensorSpec {
  std::string name;
  std::vector<uint64_t> ne;  // ne[0] contiguous (= input features of a matrix)
  TensorRole role;
  uint32_t layer;  // UINT32_MAX for global tensors
};

// `with_router_bias` adds exp_probs_b.bias to every MoE layer (V3 sigmoid routing, or
// any model whose routing was skewed on purpose).
std::vector<TensorSpec> Deepseek2TensorPlan(const Deepseek2Config& c, bool with_router_bias);

}  // namespace strata::engine

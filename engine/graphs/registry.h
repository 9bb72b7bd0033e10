// Architecture name (general.architecture) -> the graph that runs it. The config
// reader accepts a file only when its architecture is registered here.
#pragma once

#include <memory>
#include <string_view>
#include <vector>

#include "engine/blocks/block_context.h"
#include "engine/graphs/graph.h"
#include "storage/ggml_types.h"
#include "util/status.h"

namespace strata::engine {

// What a graph is built for: the context length and KV cache type of each of the
// session's `n_seq` sequences.
struct GraphShape {
  uint32_t n_ctx = 0;
  storage::GgmlType kv_type = storage::GgmlType::kF16;
  uint32_t n_seq = 1;
};

// The graph of ctx.c.arch for one session. Errors: an architecture no graph runs.
Result<std::unique_ptr<Graph>> MakeGraph(BlockContext& ctx, const GraphShape& shape);
// The architectures a graph runs, in registration order.
std::vector<std::string_view> RegisteredArchitectures();

}  // namespace strata::engine

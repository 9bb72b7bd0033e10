#include "engine/graphs/registry.h"

#include <string>

#include "engine/deepseek4_config.h"
#include "engine/graphs/deepseek2.h"
#include "engine/graphs/deepseek4.h"

namespace strata::engine {
namespace {

struct Entry {
  std::string_view arch;
  std::unique_ptr<Graph> (*make)(BlockContext& ctx, const GraphShape& shape);
};

std::unique_ptr<Graph> MakeDeepseek2(BlockContext& ctx, const GraphShape& shape) {
  return std::make_unique<Deepseek2Graph>(ctx, shape.n_ctx, shape.kv_type, shape.n_seq);
}

std::unique_ptr<Graph> MakeDeepseek4(BlockContext& ctx, const GraphShape& shape) {
  return std::make_unique<Deepseek4Graph>(ctx, shape.n_ctx, shape.n_seq);
}

constexpr Entry kGraphs[] = {
    {kArchDeepseek2, MakeDeepseek2},
    {kArchDeepseek2Engram, MakeDeepseek2},
    {kArchDeepseek4, MakeDeepseek4},
};

}  // namespace

Result<std::unique_ptr<Graph>> MakeGraph(BlockContext& ctx, const GraphShape& shape) {
  for (const Entry& e : kGraphs) {
    if (e.arch == ctx.c.arch) return e.make(ctx, shape);
  }
  return Status::Unsupported(ctx.model.file().path() + ": no graph runs architecture '" +
                             ctx.c.arch + "'");
}

std::vector<std::string_view> RegisteredArchitectures() {
  std::vector<std::string_view> out;
  for (const Entry& e : kGraphs) out.push_back(e.arch);
  return out;
}

}  // namespace strata::engine

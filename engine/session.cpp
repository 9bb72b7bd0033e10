#include "engine/session.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>

#include "engine/graphs/registry.h"

namespace strata::engine {
namespace {

prefetch::Prefetcher MakePrefetcher(const DeepseekModel& model, const SessionOptions& o) {
  tiers::ExpertCache* cache = model.experts();
  // Nothing to fetch when every bundle is resident or the page cache rules.
  const bool tiered = cache && cache->mode() == "tiered";
  return prefetch::Prefetcher(prefetch::CacheHints(cache), tiered ? o.prefetch : prefetch::PrefetchMode::kOff,
                              o.lookahead, model.moe_layers(), model.hash_routing());
}

std::unique_ptr<Graph> GraphOrDie(BlockContext& ctx, const GraphShape& shape) {
  Result<std::unique_ptr<Graph>> graph = MakeGraph(ctx, shape);
  if (!graph.ok()) {
    // Unreachable: the config reader accepts only registered architectures.
    std::fprintf(stderr, "strata: %s\n", graph.status().ToString().c_str());
    std::abort();
  }
  return std::move(graph).value();
}

}  // namespace

Session::Session(const DeepseekModel& model, uint32_t n_ctx, storage::GgmlType kv_type,
                 SessionOptions options)
    : ctx_(model, options.threads, options.isa, MakePrefetcher(model, options)),
      n_ctx_(n_ctx),
      residual_(ctx_),
      graph_(GraphOrDie(ctx_, {.n_ctx = n_ctx, .kv_type = kv_type})) {}

const V4Counters& Session::v4_counters() const {
  static const V4Counters kNone;
  const V4Counters* c = graph_->v4_counters();
  return c ? *c : kNone;
}

void Session::Reset() {
  n_past_ = 0;
  for (SequenceState* s : graph_->states()) s->Reset();
}

Status Session::Eval(std::span<const int32_t> tokens, std::vector<float>* logits, int64_t batch) {
  const Deepseek2Config& c = ctx_.c;
  for (int32_t t : tokens) {
    if (t < 0 || static_cast<uint32_t>(t) >= c.n_vocab) {
      return Status::InvalidArgument("token id " + std::to_string(t) +
                                     " is outside the vocabulary (" + std::to_string(c.n_vocab) +
                                     " tokens)");
    }
  }
  if (n_past_ + static_cast<int64_t>(tokens.size()) > n_ctx_) {
    return Status::ResourceExhausted(
        "context full: " + std::to_string(n_past_) + " + " + std::to_string(tokens.size()) +
        " tokens exceed -c/--ctx-size " + std::to_string(n_ctx_));
  }
  batch = std::clamp<int64_t>(batch, 1, graph_->chunk_limit());
  const int64_t start = n_past_;
  // A failed chunk leaves the session as it was: position and every block's state.
  for (SequenceState* s : graph_->states()) s->Checkpoint(start, static_cast<int64_t>(tokens.size()));
  for (size_t first = 0; first < tokens.size(); first += static_cast<size_t>(batch)) {
    const int64_t n = std::min<int64_t>(batch, static_cast<int64_t>(tokens.size() - first));
    const bool last = first + static_cast<size_t>(n) == tokens.size();
    if (Status s = EvalChunk({tokens.data() + first, n, n_past_}, last, logits); !s.ok()) {
      n_past_ = start;
      for (SequenceState* st : graph_->states()) st->Rollback();
      return s;
    }
  }
  for (SequenceState* s : graph_->states()) s->Commit();
  return Status::Ok();
}

Status Session::EvalChunk(const Chunk& chunk, bool want_logits, std::vector<float>* logits) {
  std::span<SequenceState* const> states = graph_->states();
  // Whatever BeginChunk pinned is handed back when the chunk ends, run or failed.
  struct EndChunk {
    std::span<SequenceState* const> states;
    ~EndChunk() {
      for (SequenceState* s : states) s->EndChunk();
    }
  } end_chunk{states};
  {
    ScopedTimer timer(&ctx_.timings.head_ns);
    ctx_.prefetcher.BeginToken({chunk.tokens, static_cast<size_t>(chunk.n)});
    for (SequenceState* s : states) STRATA_RETURN_IF_ERROR(s->BeginChunk(chunk));
    residual_.Embed(chunk);
  }
  for (uint32_t il = 0; il < ctx_.c.n_layer; ++il) {
    STRATA_RETURN_IF_ERROR(graph_->Layer(il, chunk, residual_));
  }
  n_past_ += chunk.n;
  if (!want_logits || !logits) return Status::Ok();
  ScopedTimer timer(&ctx_.timings.head_ns);
  residual_.Logits(chunk.n, logits);
  return Status::Ok();
}

}  // namespace strata::engine

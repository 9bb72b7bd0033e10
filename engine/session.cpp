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
                 SessionOptions options, uint32_t n_seq)
    : ctx_(model, options.threads, options.isa, MakePrefetcher(model, options)),
      n_ctx_(n_ctx),
      residual_(ctx_),
      graph_(GraphOrDie(ctx_, {.n_ctx = n_ctx, .kv_type = kv_type, .n_seq = std::max(n_seq, 1u)})),
      n_past_(std::max(n_seq, 1u), 0) {}

const V4Counters& Session::v4_counters() const {
  static const V4Counters kNone;
  const V4Counters* c = graph_->v4_counters();
  return c ? *c : kNone;
}

void Session::Reset(uint32_t seq) {
  n_past_[seq] = 0;
  for (SequenceState* s : graph_->states(seq)) s->Reset();
}

void Session::Reset() {
  for (uint32_t seq = 0; seq < n_seq(); ++seq) Reset(seq);
}

namespace {

constexpr uint32_t kSequenceMagic = 0x31514553;  // "SEQ1"

}  // namespace

std::vector<uint8_t> Session::SaveSequence(uint32_t seq) const {
  std::vector<uint8_t> bytes;
  ByteWriter out(&bytes);
  const std::span<PersistentState* const> parts = graph_->persistent(seq);
  out.Put(kSequenceMagic);
  out.Put<int64_t>(n_past_[seq]);
  out.Put<uint32_t>(static_cast<uint32_t>(parts.size()));
  for (const PersistentState* p : parts) p->Save(n_past_[seq], out);
  return bytes;
}

Status Session::LoadSequence(uint32_t seq, std::span<const uint8_t> bytes) {
  ByteReader in(bytes);
  uint32_t magic = 0, n_parts = 0;
  int64_t n_past = 0;
  const std::span<PersistentState* const> parts = graph_->persistent(seq);
  bool ok = in.Get(&magic) && magic == kSequenceMagic && in.Get(&n_past) && n_past >= 0 &&
            n_past <= n_ctx_ && in.Get(&n_parts) && n_parts == parts.size();
  for (size_t i = 0; ok && i < parts.size(); ++i) ok = parts[i]->Load(n_past, in);
  if (!ok || !in.done()) {
    Reset(seq);
    return Status::Corruption("a saved sequence of " + std::to_string(bytes.size()) +
                              " bytes does not fit this model, KV type and context");
  }
  n_past_[seq] = n_past;
  return Status::Ok();
}

Status Session::CheckTokens(std::span<const int32_t> tokens) const {
  for (int32_t t : tokens) {
    if (t < 0 || static_cast<uint32_t>(t) >= ctx_.c.n_vocab) {
      return Status::InvalidArgument("token id " + std::to_string(t) +
                                     " is outside the vocabulary (" +
                                     std::to_string(ctx_.c.n_vocab) + " tokens)");
    }
  }
  return Status::Ok();
}

namespace {

Status ContextFull(int64_t past, size_t more, uint32_t n_ctx) {
  return Status::ResourceExhausted("context full: " + std::to_string(past) + " + " +
                                   std::to_string(more) + " tokens exceed -c/--ctx-size " +
                                   std::to_string(n_ctx));
}

}  // namespace

Status Session::Eval(uint32_t seq, std::span<const int32_t> tokens, std::vector<float>* logits,
                     int64_t batch) {
  if (seq >= n_seq()) {
    return Status::InvalidArgument("sequence " + std::to_string(seq) + " of " +
                                   std::to_string(n_seq()));
  }
  STRATA_RETURN_IF_ERROR(CheckTokens(tokens));
  if (n_past_[seq] + static_cast<int64_t>(tokens.size()) > n_ctx_) {
    return ContextFull(n_past_[seq], tokens.size(), n_ctx_);
  }
  batch = std::clamp<int64_t>(batch, 1, graph_->chunk_limit());
  const int64_t start = n_past_[seq];
  const std::span<SequenceState* const> states = graph_->states(seq);
  // A failed chunk leaves the sequence as it was: position and every block's state.
  for (SequenceState* s : states) s->Checkpoint(start, static_cast<int64_t>(tokens.size()));
  for (size_t first = 0; first < tokens.size(); first += static_cast<size_t>(batch)) {
    const int64_t n = std::min<int64_t>(batch, static_cast<int64_t>(tokens.size() - first));
    const LaneChunk part{seq, {tokens.data() + first, n, n_past_[seq]}, 0};
    if (Status s = Forward({{&part, 1}, part.chunk.tokens, n}); !s.ok()) {
      n_past_[seq] = start;
      for (SequenceState* st : states) st->Rollback();
      return s;
    }
    if (first + static_cast<size_t>(n) == tokens.size() && logits) {
      ScopedTimer timer(&ctx_.timings.head_ns);
      logits->resize(ctx_.c.n_vocab);
      residual_.Logits(n - 1, 1, logits->data());
    }
  }
  for (SequenceState* s : states) s->Commit();
  return Status::Ok();
}

Status Session::Step(std::span<const uint32_t> seqs, std::span<const int32_t> tokens,
                     std::vector<std::vector<float>>* logits) {
  if (seqs.empty() || seqs.size() != tokens.size()) {
    return Status::InvalidArgument("a step takes one token for each of its sequences");
  }
  std::vector<uint8_t> listed(n_seq(), 0);
  std::vector<LaneChunk> parts;
  for (size_t i = 0; i < seqs.size(); ++i) {
    const uint32_t seq = seqs[i];
    if (seq >= n_seq() || listed[seq]) {
      return Status::InvalidArgument("sequence " + std::to_string(seq) +
                                     (seq >= n_seq() ? " of " + std::to_string(n_seq())
                                                     : " listed twice in one step"));
    }
    listed[seq] = 1;
    if (n_past_[seq] + 1 > n_ctx_) return ContextFull(n_past_[seq], 1, n_ctx_);
    parts.push_back({seq, {&tokens[i], 1, n_past_[seq]}, static_cast<int64_t>(i)});
  }
  STRATA_RETURN_IF_ERROR(CheckTokens(tokens));
  for (const LaneChunk& p : parts) {
    for (SequenceState* s : graph_->states(p.lane)) s->Checkpoint(p.chunk.pos, 1);
  }
  const auto k = static_cast<int64_t>(parts.size());
  if (Status s = Forward({parts, tokens.data(), k}); !s.ok()) {
    for (const LaneChunk& p : parts) {
      for (SequenceState* st : graph_->states(p.lane)) st->Rollback();
    }
    return s;
  }
  for (const LaneChunk& p : parts) {
    for (SequenceState* s : graph_->states(p.lane)) s->Commit();
  }
  if (!logits) return Status::Ok();
  ScopedTimer timer(&ctx_.timings.head_ns);
  const int64_t V = ctx_.c.n_vocab;
  std::vector<float> all(static_cast<size_t>(k * V));
  residual_.Logits(0, k, all.data());
  logits->resize(static_cast<size_t>(k));
  for (int64_t i = 0; i < k; ++i) (*logits)[i].assign(&all[i * V], &all[(i + 1) * V]);
  return Status::Ok();
}

Status Session::Forward(const Batch& batch) {
  // Whatever BeginChunk pinned is handed back when the batch ends, run or failed.
  struct EndChunks {
    std::vector<SequenceState*> states;
    ~EndChunks() {
      for (SequenceState* s : states) s->EndChunk();
    }
  } end_chunks;
  {
    ScopedTimer timer(&ctx_.timings.head_ns);
    ctx_.prefetcher.BeginToken({batch.tokens, static_cast<size_t>(batch.n)}, batch.decode());
    for (const LaneChunk& part : batch.lanes) {
      for (SequenceState* s : graph_->states(part.lane)) {
        end_chunks.states.push_back(s);
        STRATA_RETURN_IF_ERROR(s->BeginChunk(part.chunk));
      }
    }
    residual_.Embed({batch.tokens, batch.n, 0});
  }
  for (uint32_t il = 0; il < ctx_.c.n_layer; ++il) {
    STRATA_RETURN_IF_ERROR(graph_->Layer(il, batch, residual_));
  }
  for (const LaneChunk& part : batch.lanes) n_past_[part.lane] += part.chunk.n;
  return Status::Ok();
}

}  // namespace strata::engine

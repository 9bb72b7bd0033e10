// The expert prefetch scheduler: decides which expert bundles to read ahead of the
// demand and issues them as low-priority reads in the expert cache.
//   history  the experts each layer used for the previous token are hinted for the
//            same layer of this token, a window of `lookahead` MoE layers ahead
//   hash     V4's hash-routed layers pick their experts from the token id alone
//            (tid2eid): exact, so they are hinted as soon as the token is known
//   router   after a layer routes, the routers of the next `lookahead` MoE layers are
//            applied to its hidden state (the engine computes that, through
//            RouterOracle) and their top-k are hinted
// Hints are deduplicated against bundles resident or in flight (the cache refuses
// those) and against hints already issued this token; BeginToken() cancels the reads
// of the previous token's hints that have not started, so stale predictions never
// delay demand. Demand reads always go first (the reader's queues). Prefetching never
// changes results, only when bytes arrive. Routing hints are for decode (one token, or
// one token of each of several sequences, whose picks are hinted together): a prefill
// chunk demands its union of experts layer by layer. Thread-compatible (the decode thread).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string_view>
#include <vector>

#include "tiers/expert_cache.h"
#include "util/status.h"

namespace strata::prefetch {

enum class PrefetchMode { kOff, kHistory, kRouter, kAll };
std::string_view PrefetchModeName(PrefetchMode m);
Result<PrefetchMode> ParsePrefetchMode(std::string_view name);

// What only the engine can compute: the experts a later MoE layer's router would pick
// for the hidden state of the layer that just routed.
class RouterOracle {
 public:
  virtual ~RouterOracle() = default;
  virtual std::vector<int32_t> Predict(uint32_t layer) = 0;
};

// V4's hash routing: per model layer, the [n_vocab][k] expert ids of a hash layer, or
// null. Empty when the model has none.
struct HashRouting {
  std::vector<const int32_t*> tables;
  uint32_t k = 0;

  const int32_t* table(uint32_t layer) const {
    return layer < tables.size() ? tables[layer] : nullptr;
  }
};

// Where hints go: the expert cache, or a test's recorder.
class HintSink {
 public:
  virtual ~HintSink() = default;
  // A new token: reads of earlier hints that have not started are cancelled.
  virtual void BeginToken() = 0;
  // Refused by the cache when resident, in flight, or no slot can be spared.
  virtual void Hint(uint32_t layer, uint32_t expert) = 0;
};

// The expert cache as a HintSink; `cache` must outlive it.
std::unique_ptr<HintSink> CacheHints(tiers::ExpertCache* cache);

class Prefetcher {
 public:
  // `moe_layers`: the model's MoE layer indices in order. `sink` null, or mode kOff:
  // nothing is hinted.
  Prefetcher(std::unique_ptr<HintSink> sink, PrefetchMode mode, uint32_t lookahead,
             std::vector<uint32_t> moe_layers, HashRouting hash = {});

  bool router_lookahead() const {
    return sink_ && lookahead_ > 0 &&
           (mode_ == PrefetchMode::kRouter || mode_ == PrefetchMode::kAll);
  }
  uint32_t lookahead() const { return lookahead_; }
  // The MoE layers after `layer` that lookahead covers, nearest first.
  std::span<const uint32_t> LayersAfter(uint32_t layer) const;

  // A new chunk of `tokens`: cancels stale hints and hints history for the first
  // layers. A decode step (one token, or `decode`: one token of each of several
  // sequences) also hints every hash layer's experts of its tokens.
  void BeginToken(std::span<const int32_t> tokens, bool decode = false);
  // Layer `layer` routed the decode step's tokens to `experts` (all of them, in any
  // order): history is recorded and hinted `lookahead` MoE layers ahead, and the next
  // layers are hinted by hash or `oracle`.
  void OnRouted(uint32_t layer, std::span<const int32_t> experts, RouterOracle& oracle);

 private:
  bool history() const {
    return sink_ && (mode_ == PrefetchMode::kHistory || mode_ == PrefetchMode::kAll);
  }
  void HintHistory(size_t moe_index);
  // A hash layer's experts for each decode token (nothing for other layers).
  void HintHash(uint32_t layer);
  void Hint(uint32_t layer, std::span<const int32_t> experts);

  std::unique_ptr<HintSink> sink_;
  const PrefetchMode mode_;
  const uint32_t lookahead_;
  const std::vector<uint32_t> moe_layers_;
  const HashRouting hash_;
  std::vector<int32_t> moe_index_;             // layer -> index in moe_layers_, -1 dense
  std::vector<std::vector<int32_t>> history_;  // per MoE index: previous step's experts
  std::vector<std::vector<uint8_t>> hinted_;   // per MoE index: hinted this step
  std::vector<int32_t> decode_tokens_;         // the decode step's tokens; none in prefill
};

}  // namespace strata::prefetch

// The prefetch scheduler: turns what the engine knows about coming expert use into
// low-priority reads in the expert cache, ahead of the demand.
//   history  the experts each layer used for the previous token are hinted for the
//            same layer of this token, a window of `lookahead` MoE layers ahead
//   router   the engine applies the routers of layers L+1..L+d to layer L's hidden
//            state and hands the top-k here (HintRouter)
// Hints are deduplicated against bundles resident or in flight (the cache refuses
// those) and against hints already issued this token; BeginToken() cancels the reads
// of the previous token's hints that have not started, so stale predictions never
// delay demand. Demand reads always go first (the reader's queues). Prefetching never
// changes results, only when bytes arrive. Thread-compatible (the decode thread).
#pragma once

#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "tiers/expert_cache.h"
#include "util/status.h"

namespace strata::prefetch {

enum class PrefetchMode { kOff, kHistory, kRouter, kAll };
std::string_view PrefetchModeName(PrefetchMode m);
Result<PrefetchMode> ParsePrefetchMode(std::string_view name);

class Prefetcher {
 public:
  // `moe_layers`: the model's MoE layer indices in order.
  Prefetcher(tiers::ExpertCache* cache, PrefetchMode mode, uint32_t lookahead,
             std::vector<uint32_t> moe_layers);

  bool router_lookahead() const {
    return cache_ && lookahead_ > 0 &&
           (mode_ == PrefetchMode::kRouter || mode_ == PrefetchMode::kAll);
  }
  uint32_t lookahead() const { return lookahead_; }
  // The MoE layers after `layer` that lookahead covers, nearest first.
  std::span<const uint32_t> LayersAfter(uint32_t layer) const;

  // A new decode token: cancels stale hints and hints history for the first layers.
  void BeginToken();
  // Layer `layer` routed this token to `experts`: history is recorded and hinted
  // `lookahead` MoE layers ahead.
  void OnRouted(uint32_t layer, std::span<const int32_t> experts);
  void HintRouter(uint32_t layer, std::span<const int32_t> experts);

 private:
  bool history() const {
    return cache_ && (mode_ == PrefetchMode::kHistory || mode_ == PrefetchMode::kAll);
  }
  void HintHistory(size_t moe_index);
  void Hint(uint32_t layer, int32_t expert);

  tiers::ExpertCache* cache_;
  const PrefetchMode mode_;
  const uint32_t lookahead_;
  const std::vector<uint32_t> moe_layers_;
  std::vector<int32_t> moe_index_;             // layer -> index in moe_layers_, -1 dense
  std::vector<std::vector<int32_t>> history_;  // per MoE index: previous token's experts
  std::vector<std::vector<uint8_t>> hinted_;   // per MoE index: hinted this token
};

}  // namespace strata::prefetch

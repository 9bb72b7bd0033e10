#include "prefetch/prefetcher.h"

#include <algorithm>

namespace strata::prefetch {

std::string_view PrefetchModeName(PrefetchMode m) {
  switch (m) {
    case PrefetchMode::kOff:
      return "off";
    case PrefetchMode::kHistory:
      return "history";
    case PrefetchMode::kRouter:
      return "router";
    case PrefetchMode::kAll:
      return "all";
  }
  return "?";
}

Result<PrefetchMode> ParsePrefetchMode(std::string_view name) {
  for (PrefetchMode m :
       {PrefetchMode::kOff, PrefetchMode::kHistory, PrefetchMode::kRouter, PrefetchMode::kAll}) {
    if (name == PrefetchModeName(m)) return m;
  }
  return Status::InvalidArgument("--prefetch '" + std::string(name) +
                                 "' is not one of: off, history, router, all");
}

Prefetcher::Prefetcher(tiers::ExpertCache* cache, PrefetchMode mode, uint32_t lookahead,
                       std::vector<uint32_t> moe_layers)
    : cache_(mode == PrefetchMode::kOff ? nullptr : cache),
      mode_(mode),
      lookahead_(lookahead),
      moe_layers_(std::move(moe_layers)),
      history_(moe_layers_.size()),
      hinted_(moe_layers_.size()) {
  for (size_t i = 0; i < moe_layers_.size(); ++i) {
    if (moe_index_.size() <= moe_layers_[i]) moe_index_.resize(moe_layers_[i] + 1, -1);
    moe_index_[moe_layers_[i]] = static_cast<int32_t>(i);
  }
}

std::span<const uint32_t> Prefetcher::LayersAfter(uint32_t layer) const {
  const auto it = std::upper_bound(moe_layers_.begin(), moe_layers_.end(), layer);
  const size_t first = static_cast<size_t>(it - moe_layers_.begin());
  const size_t n = std::min<size_t>(lookahead_, moe_layers_.size() - first);
  return {moe_layers_.data() + first, n};
}

void Prefetcher::BeginToken() {
  if (!cache_) return;
  cache_->CancelPrefetches();
  cache_->BeginToken();
  for (auto& h : hinted_) std::fill(h.begin(), h.end(), 0);
  if (history()) {
    for (size_t i = 0; i < std::min<size_t>(lookahead_, moe_layers_.size()); ++i) HintHistory(i);
  }
}

void Prefetcher::OnRouted(uint32_t layer, std::span<const int32_t> experts) {
  if (!cache_ || layer >= moe_index_.size() || moe_index_[layer] < 0) return;
  const auto i = static_cast<size_t>(moe_index_[layer]);
  history_[i].assign(experts.begin(), experts.end());
  if (history() && i + lookahead_ < moe_layers_.size()) HintHistory(i + lookahead_);
}

void Prefetcher::HintHistory(size_t moe_index) {
  for (const int32_t e : history_[moe_index]) {
    Hint(moe_layers_[moe_index], e);
  }
}

void Prefetcher::HintRouter(uint32_t layer, std::span<const int32_t> experts) {
  for (const int32_t e : experts) Hint(layer, e);
}

void Prefetcher::Hint(uint32_t layer, int32_t expert) {
  const auto i = static_cast<size_t>(moe_index_[layer]);
  auto& seen = hinted_[i];
  if (seen.size() <= static_cast<size_t>(expert)) seen.resize(static_cast<size_t>(expert) + 1, 0);
  if (seen[static_cast<size_t>(expert)]) return;
  seen[static_cast<size_t>(expert)] = 1;
  // Refused when resident, in flight, or no slot can be spared: the cache counts it.
  cache_->Prefetch(layer, static_cast<uint32_t>(expert));
}

}  // namespace strata::prefetch

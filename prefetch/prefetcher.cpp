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

namespace {

class ExpertCacheHints : public HintSink {
 public:
  explicit ExpertCacheHints(tiers::ExpertCache* cache) : cache_(cache) {}
  void BeginToken() override {
    cache_->CancelPrefetches();
    cache_->BeginToken();
  }
  void Hint(uint32_t layer, uint32_t expert) override { cache_->Prefetch(layer, expert); }

 private:
  tiers::ExpertCache* cache_;
};

}  // namespace

std::unique_ptr<HintSink> CacheHints(tiers::ExpertCache* cache) {
  return cache ? std::make_unique<ExpertCacheHints>(cache) : nullptr;
}

Prefetcher::Prefetcher(std::unique_ptr<HintSink> sink, PrefetchMode mode, uint32_t lookahead,
                       std::vector<uint32_t> moe_layers, HashRouting hash)
    : sink_(mode == PrefetchMode::kOff ? nullptr : std::move(sink)),
      mode_(mode),
      lookahead_(lookahead),
      moe_layers_(std::move(moe_layers)),
      hash_(std::move(hash)),
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

void Prefetcher::BeginToken(std::span<const int32_t> tokens, bool decode) {
  decode_tokens_.clear();
  if (decode || tokens.size() == 1) decode_tokens_.assign(tokens.begin(), tokens.end());
  if (!sink_) return;
  sink_->BeginToken();
  for (auto& h : hinted_) std::fill(h.begin(), h.end(), 0);
  if (history()) {
    for (size_t i = 0; i < std::min<size_t>(lookahead_, moe_layers_.size()); ++i) HintHistory(i);
  }
  // Hash layers: known from the token alone, so their reads start behind every layer
  // in front of them.
  if (router_lookahead()) {
    for (const uint32_t layer : moe_layers_) HintHash(layer);
  }
}

void Prefetcher::OnRouted(uint32_t layer, std::span<const int32_t> experts, RouterOracle& oracle) {
  if (!sink_ || decode_tokens_.empty() || layer >= moe_index_.size() || moe_index_[layer] < 0) {
    return;
  }
  const auto i = static_cast<size_t>(moe_index_[layer]);
  history_[i].assign(experts.begin(), experts.end());
  if (history() && i + lookahead_ < moe_layers_.size()) HintHistory(i + lookahead_);
  if (!router_lookahead()) return;
  for (const uint32_t next : LayersAfter(layer)) {
    if (hash_.table(next)) {  // exact
      HintHash(next);
    } else {
      Hint(next, oracle.Predict(next));
    }
  }
}

void Prefetcher::HintHash(uint32_t layer) {
  const int32_t* ids = hash_.table(layer);
  if (!ids) return;
  for (const int32_t token : decode_tokens_) Hint(layer, {ids + int64_t{token} * hash_.k, hash_.k});
}

void Prefetcher::HintHistory(size_t moe_index) {
  Hint(moe_layers_[moe_index], history_[moe_index]);
}

void Prefetcher::Hint(uint32_t layer, std::span<const int32_t> experts) {
  auto& seen = hinted_[static_cast<size_t>(moe_index_[layer])];
  for (const int32_t expert : experts) {
    const auto e = static_cast<size_t>(expert);
    if (seen.size() <= e) seen.resize(e + 1, 0);
    if (seen[e]) continue;
    seen[e] = 1;
    sink_->Hint(layer, static_cast<uint32_t>(expert));
  }
}

}  // namespace strata::prefetch

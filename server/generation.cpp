#include "server/generation.h"

#include <utility>

namespace strata::server {

Generation::Generation(std::vector<int32_t> prompt, engine::SamplerOptions sampling,
                       int32_t max_tokens, bool ignore_eos)
    : prompt_(std::move(prompt)),
      sampling_(sampling),
      max_tokens_(max_tokens),
      ignore_eos_(ignore_eos) {}

bool Generation::Take(std::vector<int32_t>* out, std::chrono::milliseconds timeout) {
  std::unique_lock lock(mu_);
  changed_.wait_for(lock, timeout,
                    [&] { return !tokens_.empty() || outcome_.end != End::kRunning; });
  out->insert(out->end(), tokens_.begin(), tokens_.end());
  const bool had_tokens = !tokens_.empty();
  tokens_.clear();
  return had_tokens || outcome_.end == End::kRunning;
}

void Generation::Cancel() {
  std::lock_guard lock(mu_);
  cancelled_ = true;
}

bool Generation::cancelled() const {
  std::lock_guard lock(mu_);
  return cancelled_;
}

Generation::Outcome Generation::outcome() const {
  std::lock_guard lock(mu_);
  return outcome_;
}

void Generation::Push(int32_t token) {
  {
    std::lock_guard lock(mu_);
    tokens_.push_back(token);
  }
  changed_.notify_all();
}

void Generation::Finish(Outcome outcome) {
  {
    std::lock_guard lock(mu_);
    if (outcome_.end != End::kRunning) return;
    outcome_ = std::move(outcome);
  }
  changed_.notify_all();
}

}  // namespace strata::server

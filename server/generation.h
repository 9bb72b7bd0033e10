// One request's generation as two threads share it: the scheduler's engine loop
// (server/scheduler.h) prefills the prompt and appends each token it samples; the
// request's connection thread takes the tokens as they come, turns them into text, and
// cancels when it has what it needs (a stop string) or its client went away. The loop
// finishes the generation once: at EOS, at the token limit, when the context is full,
// when cancelled, or with the error that stopped it. Thread-safe.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <vector>

#include "engine/sampler.h"
#include "util/status.h"

namespace strata::server {

class Generation {
 public:
  enum class End { kRunning, kEos, kLength, kCancelled, kError };

  struct Outcome {
    End end = End::kRunning;
    Status status;              // kError: why
    int32_t cached_tokens = 0;  // of the prompt, reused from the slot's state
    double prefill_s = 0;       // submission to first token (queueing included)
    double decode_s = 0;        // first token to the end
    uint32_t slot = 0;          // where it ran
  };

  // `max_tokens` < 0: no limit but the context.
  Generation(std::vector<int32_t> prompt, engine::SamplerOptions sampling, int32_t max_tokens,
             bool ignore_eos);

  // Connection thread: waits up to `timeout` for tokens not yet taken and appends them
  // to `out`. Returns false once the generation has ended and every token was taken.
  bool Take(std::vector<int32_t>* out, std::chrono::milliseconds timeout);
  // Stops the generation at the loop's next step (harmless once it has ended).
  void Cancel();
  // Once Take returned false.
  Outcome outcome() const;

  // The engine loop's side.
  const std::vector<int32_t>& prompt() const { return prompt_; }
  const engine::SamplerOptions& sampling() const { return sampling_; }
  int32_t max_tokens() const { return max_tokens_; }
  bool ignore_eos() const { return ignore_eos_; }
  bool cancelled() const;
  std::chrono::steady_clock::time_point submitted() const { return submitted_; }
  void Push(int32_t token);
  void Finish(Outcome outcome);

 private:
  const std::vector<int32_t> prompt_;
  const engine::SamplerOptions sampling_;
  const int32_t max_tokens_;
  const bool ignore_eos_;
  const std::chrono::steady_clock::time_point submitted_ = std::chrono::steady_clock::now();
  mutable std::mutex mu_;
  std::condition_variable changed_;
  std::vector<int32_t> tokens_;  // sampled, not yet taken
  bool cancelled_ = false;
  Outcome outcome_;
};

}  // namespace strata::server

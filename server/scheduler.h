// The engine loop of `strata serve`: N slots (sequences of one engine::Session, so
// they share the weights, the expert cache, the thread pool and the prefetcher) and a
// queue of generations waiting for one, served in arrival order. One thread runs the
// model; each turn it prefills one chunk of one admitted prompt, then decodes one token
// of every slot past its prefill in a single batched step (engine::Session::Step), so
// each MoE layer reads the union of their experts once and runs each expert for all
// the slots that chose it. A long prompt therefore delays the others' tokens by a
// chunk at a time, never by its whole prefill.
//
// The prompt cache in RAM: each slot keeps the tokens its state holds after a
// generation, and a new generation goes to the free slot whose tokens share the
// longest prefix with its prompt (the least recently used among equals); only the rest
// is prefilled. On MLA the slot steps back to the shared prefix; where state cannot
// step back (V4, Engram) it is reused when the prompt extends it, else started over.
// With a PromptStore (--prompt-cache-dir), a prompt that starts with a longer stored
// prefix than its slot holds loads that prefix's state from disk first; a slot's state
// is stored when its prompt is prefilled (if at least `store_min_tokens` of it were
// computed) and when its generation ends (from `store_min_tokens` tokens on).
// Neither the slot chosen, the other slots' company, nor where the prefix came from
// changes a bit of an answer. Thread-safe.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "engine/sampler.h"
#include "engine/session.h"
#include "engine/tiered_model.h"
#include "server/generation.h"
#include "server/prompt_store.h"
#include "util/status.h"

namespace strata::server {

struct SchedulerOptions {
  uint32_t slots = 1;
  uint32_t n_ctx = 4096;  // per slot
  storage::GgmlType kv_type = storage::GgmlType::kF16;
  int64_t batch = 512;  // prefill chunk
  engine::SessionOptions session;
  uint32_t max_queue = 16;  // generations that may wait for a slot
  int32_t eos = -1;         // the token that ends an answer (-1: none)
  PromptStore* store = nullptr;    // the prompt cache on disk, if any
  uint32_t store_min_tokens = 256;  // shorter sequences are not stored
};

struct SchedulerStats {
  uint32_t waiting = 0;          // queued for a slot
  uint32_t busy = 0;             // slots generating
  uint64_t steps = 0;            // decode steps
  uint64_t step_tokens = 0;      // tokens those decoded (tokens / steps: the mean batch)
  uint64_t prefill_tokens = 0;   // prompt tokens evaluated
  uint64_t reused_tokens = 0;    // prompt tokens found in a slot instead
  uint64_t loaded_tokens = 0;    // prompt tokens loaded from the prompt store instead
};

class Scheduler {
 public:
  Scheduler(engine::TieredModel& model, SchedulerOptions options);
  ~Scheduler();
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // Queues `g`; it starts when a slot is free. Errors: a prompt that is empty or leaves
  // no room in a slot's context (InvalidArgument), a full queue (ResourceExhausted),
  // a scheduler that is stopping (Cancelled).
  Status Submit(std::shared_ptr<Generation> g);
  // Ends every generation, queued or running, as cancelled, and joins the loop.
  void Stop();

  SchedulerStats stats() const;
  uint32_t slots() const { return options_.slots; }
  uint32_t n_ctx() const { return options_.n_ctx; }
  // The tokens slot `slot`'s state holds now.
  std::vector<int32_t> Held(uint32_t slot) const;

 private:
  struct Slot {
    std::vector<int32_t> held;       // what the sequence's state holds (guarded by mu_)
    std::shared_ptr<Generation> g;   // null: free (guarded by mu_)
    size_t prefilled = 0;            // prompt tokens the state holds
    int32_t reused = 0;              // of those, found there or loaded from the store
    bool consult_store = false;      // admitted; the store not asked yet
    std::optional<engine::Sampler> sampler;
    std::vector<float> logits;       // after the last token evaluated
    int32_t generated = 0;
    int32_t next = -1;               // sampled, evaluated by the next step
    double prefill_s = 0;
    std::chrono::steady_clock::time_point first_token;
    uint64_t last_used = 0;
  };

  void Loop();
  // Moves queued generations into free slots. REQUIRES: mu_ held.
  void AdmitLocked();
  // Prompt tokens slot `s` would reuse for `prompt`.
  size_t Reusable(const Slot& s, const std::vector<int32_t>& prompt) const;
  // Loads the longest stored prefix of the slot's prompt that beats what it holds.
  void LoadFromStore(uint32_t index);
  // Stores the slot's state, unless short or stored already.
  void SaveToStore(uint32_t index);
  void PrefillChunk(uint32_t index);
  void DecodeStep();
  // Samples the next token from the slot's logits, or ends its generation.
  void Advance(uint32_t index);
  void End(uint32_t index, Generation::End end, Status status = Status::Ok());

  const SchedulerOptions options_;
  engine::Session session_;
  std::vector<Slot> slots_;
  std::deque<uint32_t> prefilling_;  // admitted slots still prefilling, in admission order
  std::vector<std::vector<float>> step_logits_;
  uint64_t clock_ = 0;

  mutable std::mutex mu_;
  std::condition_variable work_;
  std::deque<std::shared_ptr<Generation>> queue_;
  bool stopping_ = false;
  SchedulerStats stats_;
  std::thread thread_;
};

}  // namespace strata::server

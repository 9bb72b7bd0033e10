#include "server/scheduler.h"

#include <algorithm>

namespace strata::server {
namespace {

double SecondsSince(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

}  // namespace

Scheduler::Scheduler(engine::TieredModel& model, SchedulerOptions options)
    : options_(options),
      session_(model.model(), options.n_ctx, options.kv_type, options.session,
               std::max(options.slots, 1u)),
      slots_(std::max(options.slots, 1u)),
      thread_([this] { Loop(); }) {}

Scheduler::~Scheduler() { Stop(); }

Status Scheduler::Submit(std::shared_ptr<Generation> g) {
  const size_t n = g->prompt().size();
  if (n == 0) return Status::InvalidArgument("the prompt is empty");
  if (n + 1 > options_.n_ctx) {
    return Status::InvalidArgument("the prompt has " + std::to_string(n) +
                                   " tokens; the context holds " + std::to_string(options_.n_ctx) +
                                   " with room for one generated token (raise -c/--ctx-size)");
  }
  {
    std::lock_guard lock(mu_);
    if (stopping_) return Status::Cancelled("the server is shutting down");
    const auto free = static_cast<size_t>(
        std::count_if(slots_.begin(), slots_.end(), [](const Slot& s) { return !s.g; }));
    if (queue_.size() >= options_.max_queue + free) {
      return Status::ResourceExhausted("the server is busy: " + std::to_string(options_.max_queue) +
                                       " requests are already waiting (--max-queue)");
    }
    queue_.push_back(std::move(g));
  }
  work_.notify_all();
  return Status::Ok();
}

void Scheduler::Stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  work_.notify_all();
  if (thread_.joinable()) thread_.join();
}

SchedulerStats Scheduler::stats() const {
  std::lock_guard lock(mu_);
  SchedulerStats s = stats_;
  s.waiting = static_cast<uint32_t>(queue_.size());
  s.busy = static_cast<uint32_t>(
      std::count_if(slots_.begin(), slots_.end(), [](const Slot& x) { return x.g != nullptr; }));
  return s;
}

std::vector<int32_t> Scheduler::Held(uint32_t slot) const {
  std::lock_guard lock(mu_);
  return slots_.at(slot).held;
}

size_t Scheduler::Reusable(const Slot& s, const std::vector<int32_t>& prompt) const {
  size_t common = 0;
  while (common < s.held.size() && common < prompt.size() && s.held[common] == prompt[common]) {
    ++common;
  }
  // At least the prompt's last token is evaluated: its logits start the answer.
  const size_t keep = std::min(common, prompt.size() - 1);
  if (session_.can_truncate() || keep == s.held.size()) return keep;
  return 0;  // the state cannot step back to the shared prefix
}

void Scheduler::AdmitLocked() {
  while (!queue_.empty()) {
    const std::vector<int32_t>& prompt = queue_.front()->prompt();
    int64_t best = -1;
    size_t best_reuse = 0;
    for (uint32_t i = 0; i < slots_.size(); ++i) {
      const Slot& s = slots_[i];
      if (s.g) continue;
      const size_t reuse = Reusable(s, prompt);
      if (best < 0 || reuse > best_reuse ||
          (reuse == best_reuse && s.last_used < slots_[static_cast<size_t>(best)].last_used)) {
        best = i;
        best_reuse = reuse;
      }
    }
    if (best < 0) return;  // every slot is busy
    const auto index = static_cast<uint32_t>(best);
    Slot& s = slots_[index];
    s.g = std::move(queue_.front());
    queue_.pop_front();
    if (best_reuse < s.held.size()) {
      if (session_.can_truncate()) {
        session_.Truncate(index, static_cast<int64_t>(best_reuse));
      } else {
        session_.Reset(index);
      }
      s.held.resize(best_reuse);
    }
    s.prefilled = best_reuse;
    s.reused = static_cast<int32_t>(best_reuse);
    s.consult_store = options_.store != nullptr;
    s.sampler.emplace(s.g->sampling());
    for (const int32_t t : s.g->prompt()) s.sampler->Accept(t);
    s.generated = 0;
    s.next = -1;
    s.prefill_s = 0;
    stats_.reused_tokens += best_reuse;
    prefilling_.push_back(index);
  }
}

void Scheduler::Loop() {
  std::unique_lock lock(mu_);
  while (true) {
    // Generations cancelled while queued end here; running ones at their next turn.
    for (auto it = queue_.begin(); it != queue_.end();) {
      if ((*it)->cancelled() || stopping_) {
        Generation::Outcome cancelled;
        cancelled.end = Generation::End::kCancelled;
        (*it)->Finish(std::move(cancelled));
        it = queue_.erase(it);
      } else {
        ++it;
      }
    }
    const bool running =
        std::any_of(slots_.begin(), slots_.end(), [](const Slot& s) { return s.g != nullptr; });
    if (stopping_ && !running) return;
    AdmitLocked();
    if (!std::any_of(slots_.begin(), slots_.end(), [](const Slot& s) { return s.g != nullptr; })) {
      work_.wait(lock);
      continue;
    }
    const bool stop = stopping_;
    lock.unlock();
    for (uint32_t i = 0; i < slots_.size(); ++i) {
      if (slots_[i].g && (stop || slots_[i].g->cancelled())) End(i, Generation::End::kCancelled);
    }
    if (!prefilling_.empty()) PrefillChunk(prefilling_.front());
    DecodeStep();
    lock.lock();
  }
}

void Scheduler::LoadFromStore(uint32_t index) {
  Slot& s = slots_[index];
  s.consult_store = false;
  const std::vector<int32_t>& prompt = s.g->prompt();
  std::optional<PromptStore::Hit> hit = options_.store->Find(prompt, s.prefilled, prompt.size() - 1);
  if (!hit) return;
  const Status st = session_.LoadSequence(index, hit->state);
  std::lock_guard lock(mu_);
  if (!st.ok()) {  // the sequence was reset: prefill it all
    s.held.clear();
    s.prefilled = 0;
    s.reused = 0;
    return;
  }
  s.held.assign(prompt.begin(), prompt.begin() + static_cast<std::ptrdiff_t>(hit->tokens));
  stats_.loaded_tokens += hit->tokens - s.prefilled;
  s.prefilled = hit->tokens;
  s.reused = static_cast<int32_t>(hit->tokens);
}

void Scheduler::SaveToStore(uint32_t index) {
  const Slot& s = slots_[index];
  if (!options_.store || s.held.size() < std::max<uint32_t>(options_.store_min_tokens, 1) ||
      options_.store->Contains(s.held)) {
    return;
  }
  options_.store->Put(s.held, session_.SaveSequence(index));
}

void Scheduler::PrefillChunk(uint32_t index) {
  Slot& s = slots_[index];
  if (s.consult_store) LoadFromStore(index);
  const std::vector<int32_t>& prompt = s.g->prompt();
  const size_t n = std::min<size_t>(static_cast<size_t>(std::max<int64_t>(options_.batch, 1)),
                                    prompt.size() - s.prefilled);
  const bool last = s.prefilled + n == prompt.size();
  const std::span<const int32_t> chunk(prompt.data() + s.prefilled, n);
  if (Status st = session_.Eval(index, chunk, last ? &s.logits : nullptr, options_.batch);
      !st.ok()) {
    // The sequence is as it was before the call: it holds `held`.
    End(index, Generation::End::kError, st);
    return;
  }
  {
    std::lock_guard lock(mu_);
    s.held.insert(s.held.end(), chunk.begin(), chunk.end());
    stats_.prefill_tokens += n;
  }
  s.prefilled += n;
  if (!last) return;
  prefilling_.pop_front();
  // The prompt alone is worth storing too: a request that repeats it with another
  // ending (a completion, a shared system prompt) finds it.
  if (prompt.size() - static_cast<size_t>(s.reused) >= options_.store_min_tokens) SaveToStore(index);
  s.prefill_s = SecondsSince(s.g->submitted());
  s.first_token = std::chrono::steady_clock::now();
  Advance(index);
}

void Scheduler::DecodeStep() {
  std::vector<uint32_t> seqs;
  std::vector<int32_t> tokens;
  for (uint32_t i = 0; i < slots_.size(); ++i) {
    if (slots_[i].g && slots_[i].next >= 0) {
      seqs.push_back(i);
      tokens.push_back(slots_[i].next);
    }
  }
  if (seqs.empty()) return;
  if (Status st = session_.Step(seqs, tokens, &step_logits_); !st.ok()) {
    for (const uint32_t i : seqs) End(i, Generation::End::kError, st);  // no sequence moved
    return;
  }
  {
    std::lock_guard lock(mu_);
    ++stats_.steps;
    stats_.step_tokens += seqs.size();
    for (size_t r = 0; r < seqs.size(); ++r) slots_[seqs[r]].held.push_back(tokens[r]);
  }
  for (size_t r = 0; r < seqs.size(); ++r) {
    Slot& s = slots_[seqs[r]];
    s.logits.swap(step_logits_[r]);
    s.next = -1;
    Advance(seqs[r]);
  }
}

void Scheduler::Advance(uint32_t index) {
  Slot& s = slots_[index];
  if (s.g->cancelled()) return End(index, Generation::End::kCancelled);
  if (session_.n_past(index) + 1 > static_cast<int64_t>(options_.n_ctx)) {
    return End(index, Generation::End::kLength);  // the context is full
  }
  if (s.g->max_tokens() >= 0 && s.generated >= s.g->max_tokens()) {
    return End(index, Generation::End::kLength);
  }
  const int32_t next = s.sampler->Sample(s.logits);
  s.sampler->Accept(next);
  if (next == options_.eos && !s.g->ignore_eos()) return End(index, Generation::End::kEos);
  ++s.generated;
  s.g->Push(next);
  if (s.generated == s.g->max_tokens()) return End(index, Generation::End::kLength);
  s.next = next;
}

void Scheduler::End(uint32_t index, Generation::End end, Status status) {
  Slot& s = slots_[index];
  Generation::Outcome o;
  o.end = end;
  o.status = std::move(status);
  o.cached_tokens = s.reused;
  o.slot = index;
  if (s.prefilled == s.g->prompt().size()) {
    o.prefill_s = s.prefill_s;
    o.decode_s = SecondsSince(s.first_token);
  } else {
    o.prefill_s = SecondsSince(s.g->submitted());
    prefilling_.erase(std::find(prefilling_.begin(), prefilling_.end(), index));
  }
  SaveToStore(index);
  std::shared_ptr<Generation> g;
  {
    // The slot is free before its client hears that the generation is over.
    std::lock_guard lock(mu_);
    g = std::move(s.g);
    s.last_used = ++clock_;
  }
  g->Finish(std::move(o));
}

}  // namespace strata::server

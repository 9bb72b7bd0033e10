#include "engine/thread_pool.h"

#include <fstream>
#include <set>
#include <string>
#include <utility>

namespace strata::engine {
namespace {

// Chunks per thread: enough that a thread the kernel interrupts (a disk interrupt, a
// completion thread) hands its remaining chunks to the others instead of holding every
// thread at the loop's end; few enough that a chunk's setup stays negligible.
constexpr int64_t kChunksPerThread = 2;

}  // namespace

unsigned ThreadPool::PhysicalCores() {
  // Count distinct (physical id, core id) pairs; fall back to logical CPUs.
  std::ifstream cpuinfo("/proc/cpuinfo");
  std::set<std::pair<std::string, std::string>> cores;
  std::string line, physical = "0";
  while (std::getline(cpuinfo, line)) {
    auto value = [&] { return line.substr(line.find(':') + 1); };
    if (line.rfind("physical id", 0) == 0) physical = value();
    if (line.rfind("core id", 0) == 0) cores.emplace(physical, value());
  }
  if (!cores.empty()) return static_cast<unsigned>(cores.size());
  return std::max(1u, std::thread::hardware_concurrency());
}

ThreadPool::ThreadPool(unsigned num_threads)
    : num_threads_(num_threads ? num_threads : PhysicalCores()) {
  for (unsigned i = 1; i < num_threads_; ++i)
    workers_.emplace_back(&ThreadPool::WorkerLoop, this, i);
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_.store(true, std::memory_order_release);
  }
  start_cv_.notify_all();
  for (auto& w : workers_) w.join();
}

namespace {

// About 50-200 microseconds of polling before a thread blocks.
constexpr int kSpinIterations = 4096;

inline void CpuRelax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#else
  std::this_thread::yield();
#endif
}

}  // namespace

void ThreadPool::WorkerLoop(unsigned index) {
  uint64_t seen = 0;
  for (;;) {
    for (int i = 0; i < kSpinIterations; ++i) {
      if (generation_.load(std::memory_order_acquire) != seen ||
          stop_.load(std::memory_order_acquire))
        break;
      CpuRelax();
    }
    if (generation_.load(std::memory_order_acquire) == seen) {
      std::unique_lock<std::mutex> lock(mu_);
      start_cv_.wait(lock, [&] {
        return stop_.load(std::memory_order_acquire) ||
               generation_.load(std::memory_order_acquire) != seen;
      });
    }
    if (stop_.load(std::memory_order_acquire)) return;
    seen = generation_.load(std::memory_order_acquire);
    RunChunks(index);
    if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
      std::lock_guard<std::mutex> lock(mu_);  // pairs with the caller's wait
      done_cv_.notify_one();
    }
  }
}

void ThreadPool::RunChunks(unsigned index) {
  // Thread k first runs chunk k, claimed without touching the shared counter; then
  // the threads take the remaining chunks in turn.
  for (int64_t c = index;; c = next_chunk_.fetch_add(1, std::memory_order_relaxed)) {
    if (c >= chunks_) return;
    const int64_t begin = c * grains_ / chunks_ * grain_;
    const int64_t end = std::min(n_, (c + 1) * grains_ / chunks_ * grain_);
    if (begin < end) (*fn_)(begin, end);
  }
}

void ThreadPool::ParallelFor(int64_t n, const std::function<void(int64_t, int64_t)>& fn,
                             int64_t grain) {
  if (n <= 0) return;
  if (grain < 1) grain = 1;
  if (num_threads_ == 1 || n <= grain) {
    fn(0, n);
    return;
  }
  fn_ = &fn;
  n_ = n;
  const int64_t grains = (n + grain - 1) / grain;
  chunks_ = std::min<int64_t>(grains, int64_t{num_threads_} * kChunksPerThread);
  // Chunk c covers grains [c * grains / chunks, (c + 1) * grains / chunks).
  grains_ = grains;
  grain_ = grain;
  next_chunk_.store(num_threads_, std::memory_order_relaxed);
  pending_.store(num_threads_ - 1, std::memory_order_relaxed);
  {
    std::lock_guard<std::mutex> lock(mu_);
    generation_.fetch_add(1, std::memory_order_acq_rel);
  }
  start_cv_.notify_all();
  RunChunks(0);
  for (int i = 0; i < kSpinIterations && pending_.load(std::memory_order_acquire) != 0; ++i)
    CpuRelax();
  if (pending_.load(std::memory_order_acquire) != 0) {
    std::unique_lock<std::mutex> lock(mu_);
    done_cv_.wait(lock, [&] { return pending_.load(std::memory_order_acquire) == 0; });
  }
}

}  // namespace strata::engine

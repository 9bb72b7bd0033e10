// A fixed pool of worker threads that runs one parallel loop at a time.
// ParallelFor(n, fn) cuts [0, n) into a few contiguous chunks per thread, aligned to
// the grain, and the threads take chunks in turn until none is left: a thread that the
// kernel interrupts (a disk interrupt, a completion thread, another process) leaves
// its remaining chunks to the others instead of holding them all at the loop's end.
// Each index is handled by exactly one thread, and the chunk boundaries depend only on
// n, the grain and the thread count. Kernels reduce each output element inside one
// index, in a fixed order, so results are bit-identical for any thread count and
// whichever thread runs a chunk.
// Hand-offs spin briefly on an atomic before blocking on a condition variable: decode
// runs hundreds of short loops per token, and a futex wake-up per loop costs more
// than the work. Thread-compatible: one caller at a time; the loop body runs on every
// worker.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace strata::engine {

class ThreadPool {
 public:
  // `num_threads` includes the calling thread; 0 means the number of physical cores.
  explicit ThreadPool(unsigned num_threads = 0);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  unsigned num_threads() const { return num_threads_; }

  // Calls fn(begin, end) for contiguous sub-ranges of [0, n) in parallel (possibly
  // several per thread) and returns when all are done. Ranges are aligned to `grain`
  // (except the last), so a kernel can hand out whole blocks of rows.
  void ParallelFor(int64_t n, const std::function<void(int64_t begin, int64_t end)>& fn,
                   int64_t grain = 1);

  // Physical cores (not hyper-threads) of this machine, at least 1.
  static unsigned PhysicalCores();

 private:
  void WorkerLoop(unsigned index);
  // Runs chunks of the current loop, thread `index`'s own first, until none is left.
  void RunChunks(unsigned index);

  const unsigned num_threads_;
  std::vector<std::thread> workers_;

  std::mutex mu_;  // guards the condition variables' waits
  std::condition_variable start_cv_;
  std::condition_variable done_cv_;
  // Published by ParallelFor before it bumps generation_ (release), read by workers
  // after they see the new generation (acquire).
  const std::function<void(int64_t, int64_t)>* fn_ = nullptr;
  int64_t n_ = 0;
  int64_t grain_ = 1;
  int64_t grains_ = 0;  // ceil(n_ / grain_)
  int64_t chunks_ = 0;
  std::atomic<int64_t> next_chunk_{0};
  std::atomic<uint64_t> generation_{0};  // bumped for each ParallelFor
  std::atomic<unsigned> pending_{0};     // workers still running the current loop
  std::atomic<bool> stop_{false};
};

}  // namespace strata::engine

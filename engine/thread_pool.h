// A fixed pool of worker threads that runs one parallel loop at a time with static,
// deterministic partitioning: ParallelFor(n, fn) splits [0, n) into `num_threads()`
// contiguous ranges, range k always goes to thread k, and each index is handled by
// exactly one thread. Kernels reduce each output element inside one index, in a fixed
// order, so results are bit-identical for any thread count.
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

  // Calls fn(begin, end) for contiguous sub-ranges of [0, n) in parallel and returns
  // when all are done. Ranges are aligned to `grain` (except the last), so a kernel
  // can hand out whole blocks of rows.
  void ParallelFor(int64_t n, const std::function<void(int64_t begin, int64_t end)>& fn,
                   int64_t grain = 1);

  // Physical cores (not hyper-threads) of this machine, at least 1.
  static unsigned PhysicalCores();

 private:
  void WorkerLoop(unsigned index);

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
  std::atomic<uint64_t> generation_{0};  // bumped for each ParallelFor
  std::atomic<unsigned> pending_{0};     // workers still running the current loop
  std::atomic<bool> stop_{false};
};

}  // namespace strata::engine

// A progress bar for long byte-oriented jobs (writing a model, loading weights):
//   make-model [##########..........]  48%  4.21 GiB / 8.77 GiB  1.1 GiB/s  ETA 4s
// Drawn on stderr only when stderr is a terminal, at most 10 times a second; when it
// is not a terminal nothing is drawn and only Finish() prints its summary line.
// Thread-compatible: one thread calls Advance().
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace strata {

class ProgressBar {
 public:
  ProgressBar(std::string label, uint64_t total_bytes, bool enabled = true);
  ProgressBar(const ProgressBar&) = delete;
  ProgressBar& operator=(const ProgressBar&) = delete;

  void Advance(uint64_t bytes);
  // Prints "label: 8.77 GiB in 7.9 s (1.1 GiB/s)" and returns the elapsed seconds.
  double Finish();
  double elapsed_seconds() const;

 private:
  void Draw();

  std::string label_;
  uint64_t total_;
  uint64_t done_ = 0;
  bool draw_;
  bool enabled_;
  std::chrono::steady_clock::time_point start_;
  std::chrono::steady_clock::time_point last_draw_;
};

}  // namespace strata

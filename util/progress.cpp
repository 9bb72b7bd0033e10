#include "util/progress.h"

#include <unistd.h>

#include <cstdio>

#include "util/size_parse.h"

namespace strata {

ProgressBar::ProgressBar(std::string label, uint64_t total_bytes, bool enabled)
    : label_(std::move(label)),
      total_(total_bytes),
      draw_(enabled && isatty(STDERR_FILENO) == 1),
      enabled_(enabled),
      start_(std::chrono::steady_clock::now()),
      last_draw_(start_) {}

double ProgressBar::elapsed_seconds() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

void ProgressBar::Advance(uint64_t bytes) {
  done_ += bytes;
  if (!draw_) return;
  auto now = std::chrono::steady_clock::now();
  if (now - last_draw_ < std::chrono::milliseconds(100)) return;
  last_draw_ = now;
  Draw();
}

void ProgressBar::Draw() {
  const double secs = elapsed_seconds();
  const double frac = total_ ? static_cast<double>(done_) / static_cast<double>(total_) : 1.0;
  const int width = 24;
  const int filled = static_cast<int>(frac * width);
  std::string bar(static_cast<size_t>(filled), '#');
  bar.resize(width, '.');
  const double rate = secs > 0 ? static_cast<double>(done_) / secs : 0;
  const double eta = rate > 0 ? static_cast<double>(total_ - done_) / rate : 0;
  std::fprintf(stderr, "\r%s [%s] %3d%%  %s / %s  %s/s  ETA %.0fs\033[K", label_.c_str(),
               bar.c_str(), static_cast<int>(frac * 100), FormatBytes(done_).c_str(),
               FormatBytes(total_).c_str(), FormatBytes(static_cast<uint64_t>(rate)).c_str(), eta);
  std::fflush(stderr);
}

double ProgressBar::Finish() {
  const double secs = elapsed_seconds();
  if (draw_) std::fprintf(stderr, "\r\033[K");
  if (enabled_) {
    const double rate = secs > 0 ? static_cast<double>(done_) / secs : 0;
    std::fprintf(stderr, "%s: %s in %.1f s (%s/s)\n", label_.c_str(), FormatBytes(done_).c_str(),
                 secs, FormatBytes(static_cast<uint64_t>(rate)).c_str());
  }
  return secs;
}

}  // namespace strata

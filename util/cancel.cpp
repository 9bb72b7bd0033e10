#include "util/cancel.h"

#include <atomic>
#include <csignal>

namespace strata {
namespace {

std::atomic<bool> g_interrupted{false};

extern "C" void OnInterrupt(int) { g_interrupted.store(true, std::memory_order_relaxed); }

}  // namespace

void InstallInterruptHandler() {
  struct sigaction sa {};
  sa.sa_handler = OnInterrupt;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
}

bool InterruptRequested() { return g_interrupted.load(std::memory_order_relaxed); }
void RequestInterrupt() { g_interrupted.store(true, std::memory_order_relaxed); }
void ClearInterrupt() { g_interrupted.store(false, std::memory_order_relaxed); }

}  // namespace strata

// The RAM budget as an account: every resident byte the tiers hold is a Reservation
// against it, and a reservation that would overdraw it fails with a message naming
// what asked. Reservations are move-only and give their bytes back when destroyed, so
// the budget is a ceiling by construction. Thread-safe.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <string_view>

#include "util/status.h"

namespace strata::tiers {

class RamBudget;

class Reservation {
 public:
  Reservation() = default;
  Reservation(Reservation&& o) noexcept : budget_(o.budget_), bytes_(o.bytes_) {
    o.budget_ = nullptr;
    o.bytes_ = 0;
  }
  Reservation& operator=(Reservation&& o) noexcept;
  Reservation(const Reservation&) = delete;
  Reservation& operator=(const Reservation&) = delete;
  ~Reservation() { Release(); }

  uint64_t bytes() const { return bytes_; }
  void Release();

 private:
  friend class RamBudget;
  Reservation(RamBudget* budget, uint64_t bytes) : budget_(budget), bytes_(bytes) {}
  RamBudget* budget_ = nullptr;
  uint64_t bytes_ = 0;
};

class RamBudget {
 public:
  // `limit` 0 means unlimited.
  explicit RamBudget(uint64_t limit) : limit_(limit) {}
  RamBudget(const RamBudget&) = delete;
  RamBudget& operator=(const RamBudget&) = delete;

  Result<Reservation> Reserve(uint64_t bytes, std::string_view what);
  uint64_t limit() const { return limit_; }
  uint64_t used() const { return used_.load(std::memory_order_relaxed); }

 private:
  friend class Reservation;
  const uint64_t limit_;
  std::atomic<uint64_t> used_{0};
};

}  // namespace strata::tiers

#include "tiers/ram_budget.h"

#include "util/size_parse.h"

namespace strata::tiers {

Reservation& Reservation::operator=(Reservation&& o) noexcept {
  if (this != &o) {
    Release();
    budget_ = o.budget_;
    bytes_ = o.bytes_;
    o.budget_ = nullptr;
    o.bytes_ = 0;
  }
  return *this;
}

void Reservation::Release() {
  if (budget_) budget_->used_.fetch_sub(bytes_, std::memory_order_relaxed);
  budget_ = nullptr;
  bytes_ = 0;
}

Result<Reservation> RamBudget::Reserve(uint64_t bytes, std::string_view what) {
  uint64_t used = used_.load(std::memory_order_relaxed);
  do {
    if (limit_ != 0 && (bytes > limit_ || used > limit_ - bytes)) {
      return Status::ResourceExhausted(std::string(what) + " needs " + FormatBytes(bytes) +
                                       " but only " + FormatBytes(limit_ - used) + " of the " +
                                       FormatBytes(limit_) + " RAM budget is left");
    }
  } while (!used_.compare_exchange_weak(used, used + bytes, std::memory_order_relaxed));
  return Reservation(this, bytes);
}

}  // namespace strata::tiers

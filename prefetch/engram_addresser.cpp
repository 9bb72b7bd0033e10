#include "prefetch/engram_addresser.h"

namespace strata::prefetch {

EngramAddresser::EngramAddresser(const EngramAddressing& addressing, tiers::EngramRowCache* rows,
                                 std::vector<bool> in_ram)
    : a_(&addressing),
      rows_(rows),
      in_ram_(std::move(in_ram)),
      hasher_(addressing),
      per_token_(hasher_.rows_per_token()) {}

Status EngramAddresser::Address(std::span<const int32_t> tokens) {
  n_ = static_cast<int64_t>(tokens.size());
  requested_ = gathered_ = 0;
  ids_.resize(tokens.size() * per_token_);
  for (size_t t = 0; t < tokens.size(); ++t) {
    hasher_.Next(tokens[t], true, std::span(&ids_[t * per_token_], per_token_));
  }
  if (!rows_) return Status::Ok();
  const uint32_t cols = a_->cols();
  std::vector<uint64_t> ids;
  for (uint32_t l = 0; l < a_->n_layers(); ++l) {
    if (!in_ram_[l]) {
      ids.clear();
      for (size_t t = 0; t < tokens.size(); ++t) {
        const uint64_t* r = &ids_[t * per_token_ + l * cols];
        ids.insert(ids.end(), r, r + cols);
      }
      STRATA_RETURN_IF_ERROR(rows_->Request(l, ids));  // pins nothing when it fails
    }
    requested_ = l + 1;
  }
  return Status::Ok();
}

void EngramAddresser::EndChunk() {
  if (!rows_ || gathered_ >= requested_) return;
  const uint32_t cols = a_->cols();
  for (uint32_t l = gathered_; l < requested_; ++l) {
    if (in_ram_[l]) continue;
    std::vector<uint8_t> scratch(rows_->row_bytes(l));
    for (int64_t t = 0; t < n_; ++t) {
      for (uint32_t col = 0; col < cols; ++col) (void)rows_->Take(l, row(l, t, col), scratch.data());
    }
  }
  gathered_ = requested_;
}

}  // namespace strata::prefetch

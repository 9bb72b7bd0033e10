// Engram's exact prefetch: a chunk's tokens are hashed into table rows (EngramHasher)
// and every Engram layer's rows are asked of the row cache at once, before layer 0 runs,
// so their reads overlap every layer in front of each Engram layer. The Engram module
// then takes its layer's rows (Take); whatever a failed chunk asked for and never took
// is handed back by EndChunk, so no row stays pinned. The hash history is the
// sequence's: Save/Restore let a failed Eval leave it as it was.
// Thread-compatible (the decode thread).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "prefetch/engram_hash.h"
#include "tiers/engram_row_cache.h"
#include "util/status.h"

namespace strata::prefetch {

class EngramAddresser {
 public:
  // `in_ram[l]`: Engram layer l's table is in RAM, so nothing is read for it. `rows`
  // may be null only when every table is. Both referents must outlive the addresser.
  EngramAddresser(const EngramAddressing& addressing, tiers::EngramRowCache* rows,
                  std::vector<bool> in_ram);

  // Hashes the chunk's tokens (advancing the history) and requests every layer's rows
  // that are not in RAM. On an error, the layers already requested stay requested
  // until EndChunk.
  Status Address(std::span<const int32_t> tokens);
  // Row id of the chunk's token `t`, column `col`, in Engram layer `l`.
  uint64_t row(uint32_t l, int64_t t, uint32_t col) const {
    return ids_[static_cast<size_t>(t) * per_token_ + size_t{l} * a_->cols() + col];
  }
  // Engram layer `l` runs: its rows will be taken (or given up) now.
  void BeginLayer(uint32_t l) { gathered_ = l + 1; }
  // Copies a requested row of layer `l` into `dst` and unpins it.
  Status Take(uint32_t l, uint64_t row, uint8_t* dst) { return rows_->Take(l, row, dst); }
  // The chunk is over (it ran, or failed): takes and drops the rows of layers it
  // requested but never reached.
  void EndChunk();

  // The hash history, as rollback restores it.
  EngramHasher Save() const { return hasher_; }
  void Restore(const EngramHasher& saved) { hasher_ = saved; }
  void Reset() { hasher_.Reset(); }

 private:
  const EngramAddressing* a_;
  tiers::EngramRowCache* rows_;
  std::vector<bool> in_ram_;
  EngramHasher hasher_;
  size_t per_token_;
  std::vector<uint64_t> ids_;  // this chunk's rows: [token][layer][col]
  int64_t n_ = 0;              // this chunk's tokens
  uint32_t requested_ = 0;     // Engram layers of this chunk whose rows were asked for
  uint32_t gathered_ = 0;      // ... and whose rows were taken
};

}  // namespace strata::prefetch

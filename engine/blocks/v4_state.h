// DeepSeek-V4 hybrid attention state (docs/MODEL.md §8): per layer, the sliding
// window of the last keys (K = V, one shared head), and in CSA/HCA layers the
// compressor that folds each window of `ratio` tokens into one compressed entry (CSA
// windows overlap: an entry mixes the previous window's first half-projections with
// this window's second), plus, in CSA layers, the lightning indexer's own compressor.
//
// Memory per layer is what §8.10 states: the window (W x D floats), one or two pending
// windows of projections, and the entries, which grow by one per `ratio` tokens.
// Writes go through an UndoLog so that a chunk that fails later in the layer stack
// (an expert read) can be rolled back: the session is then as it was before the chunk.
// Thread-compatible.
#pragma once

#include <cstdint>
#include <unordered_set>
#include <vector>

#include "engine/kernels/matmul.h"
#include "engine/rope.h"
#include "util/byte_io.h"

namespace strata::engine {

// One compressor's weights: kv and gate projections [E, c*d] (c = 2 for CSA), the
// position biases added to the gate [ratio][c*d], and the entry's RMSNorm weight [d].
struct CompressorWeights {
  kernels::WeightMatrix kv, gate;
  const float* ape = nullptr;
  const float* norm = nullptr;
};

// A V4 layer's attention weights (docs/GGUF.md §3.2). `ratio` 0: window only.
struct V4AttentionWeights {
  uint32_t ratio = 0;
  kernels::WeightMatrix kv;          // attn_kv [E, D]
  const float* kv_norm = nullptr;    // attn_kv_a_norm [D]
  kernels::WeightMatrix wo_a, wo_b;  // [H*D/G, G*Ro], [G*Ro, E]
  const float* sinks = nullptr;      // [H]
  CompressorWeights compressor;      // CSA/HCA layers
  kernels::WeightMatrix index_q_b;   // CSA: indexer.attn_q_b [Rq, Ih*Id]
  kernels::WeightMatrix index_proj;  // CSA: indexer.proj [E, Ih]
  CompressorWeights index_compressor;
};

// Old values of overwritten state, replayed newest first to undo a failed chunk.
class UndoLog {
 public:
  // Saves dst[0, n) before the caller overwrites it.
  void Save(float* dst, size_t n);
  void Rollback();
  void Clear();

 private:
  struct Entry {
    float* dst;
    size_t n, offset;
  };
  std::vector<Entry> entries_;
  std::vector<float> values_;
  std::unordered_set<const float*> saved_;  // rows saved since the last Clear()
};

class Compressor {
 public:
  // Entries of `dim` values from windows of `ratio` tokens; overlapping (CSA) when
  // ratio == kCsaRatio. `rope_dims`: the entry's last values rotated at position
  // w * ratio by `rope`.
  Compressor(uint32_t ratio, uint32_t dim, int rope_dims);

  // Adds the token at `pos` (positions arrive in order): its kv and gate projections
  // (c * dim values each). Completing a window appends an entry: a per-channel softmax
  // over the window's slots of (gate + ape) weighting kv, then RMSNorm and rope.
  void Add(int64_t pos, const float* kv, const float* gate, const CompressorWeights& w,
           float rms_eps, const Rope& rope, UndoLog& undo);

  int64_t entries() const { return static_cast<int64_t>(entries_.size() / dim_); }
  const float* entry(int64_t w) const { return &entries_[static_cast<size_t>(w) * dim_]; }
  // Allocates the entries of `n_ctx` tokens up front, so memory is what was budgeted.
  void Reserve(uint32_t n_ctx);
  // Drops entries past `count` (a failed chunk's).
  void Truncate(int64_t count) { entries_.resize(static_cast<size_t>(count) * dim_); }
  void Reset();
  // Everything Add reads: the pending windows and the entries. Load fails on bytes of
  // another shape or more entries than Reserve made room for.
  void Save(ByteWriter& out) const;
  bool Load(ByteReader& in);

 private:
  uint32_t ratio_, dim_, width_;
  int rope_dims_;
  bool overlap_;
  // The current window's rows by slot (pos % ratio), [ratio][width], gate with APE;
  // for CSA also the previous complete window's.
  std::vector<float> kv_, gate_, prev_kv_, prev_gate_;
  float has_prev_ = 0;  // 1 once a window completed (a float so the UndoLog covers it)
  std::vector<float> entries_;
};

// One V4 layer's sequence state.
struct V4LayerState {
  V4LayerState(uint32_t ratio, uint32_t window, uint32_t head_dim, uint32_t index_dim,
               int rope_dims);

  std::vector<float> window;  // [W][D], slot = pos % W
  Compressor compressor;      // ratio 0: unused
  Compressor index_compressor;
  void Reserve(uint32_t n_ctx);  // the compressed entries of n_ctx tokens
  void Reset();
  void Save(ByteWriter& out) const;
  bool Load(ByteReader& in);
};

// What the V4 attention attended, summed over a session: tests assert the compressed
// entries were used, and bench can report them.
struct V4Counters {
  uint64_t window_keys = 0;
  uint64_t hca_entries = 0;  // compressed HCA entries in a query's key set
  uint64_t csa_entries = 0;  // CSA entries the indexer selected

  V4Counters& operator+=(const V4Counters& o) {
    window_keys += o.window_keys;
    hca_entries += o.hca_entries;
    csa_entries += o.csa_entries;
    return *this;
  }
};

}  // namespace strata::engine

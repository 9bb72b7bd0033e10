// Engram conditional memory's constants: which layers carry a table, how rows are
// addressed (token_map, pad, primes, multipliers) and encoded, and which module form
// turns the gathered rows into a residual update. Read from ds4's `deepseek41.engram.*`
// key scheme (docs/GGUF.md §4.1) under any architecture prefix; strata's synthetic
// `deepseek2-engram` models write the same keys plus the ones ds4 hard-codes
// (docs/FORMAT.md "Engram models"). Value type; thread-compatible.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "prefetch/engram_hash.h"
#include "storage/gguf.h"
#include "storage/gguf_writer.h"
#include "util/status.h"

namespace strata::engine {

// How one table row is stored (docs/GGUF.md §4.3). The ds4 encodings hold 256 values.
enum class EngramEncoding {
  kE4m3Row264,  // "e4m3_e8m0_32_row264": 256 E4M3FN codes + 8 E8M0 scales, BF16-rounded
  kQ4KRow144,   // "q4_k_row144": one GGML Q4_K block
  kF16,         // plain rows of head_dim values
  kBF16,
  kQ8_0,
  kF32,
};
std::string_view EngramEncodingName(EngramEncoding e);
Result<EngramEncoding> ParseEngramEncoding(std::string_view name);

// V4.1: fused kv projection, q/k norm weights, signed-sqrt sigmoid gate per stream.
// Demo: per-stream keys and a shared value projection (with biases), then a short
// causal depthwise conv over the gated values (the Engram paper's reference code).
enum class EngramModule { kV41, kDemo };
std::string_view EngramModuleName(EngramModule m);

// The addressing constants (layer_ids, rows, token_map, primes, multipliers, max_ngram,
// n_heads, pad_id) are prefetch's, which hashes tokens into row requests; the rest says
// how a row is stored and which module uses it.
struct EngramConfig : prefetch::EngramAddressing {
  uint32_t head_dim = 256;           // values per row
  EngramEncoding encoding = EngramEncoding::kE4m3Row264;
  EngramModule module = EngramModule::kV41;
  uint32_t conv_kernel = 4;    // demo form only
  uint32_t conv_dilation = 3;  // demo form only (= max_ngram in the paper's code)

  uint32_t embd() const { return cols() * head_dim; }           // gathered vector length
  uint64_t row_bytes() const;
  // How engram_embd is stored (docs/GGUF.md §4.3): I8 [264, rows] for E4M3 rows, else the
  // encoding's GGML type with head_dim values per row.
  storage::GgmlType table_type() const;
  uint64_t table_ne0() const;
  // Index of `layer` in layer_ids, or -1.
  int index_of_layer(uint32_t layer) const;

  // Reads `<prefix>.engram.*`; a file without `<prefix>.engram.layer_ids` has no Engram
  // (enabled() false). Keys ds4 does not write take ds4's constants. Validates with
  // `n_vocab` and `n_layer`; errors name the file and key.
  static Result<EngramConfig> FromGguf(const storage::GgufFile& file, const std::string& prefix,
                                       uint32_t n_vocab, uint32_t n_layer);
  // The checks of docs/GGUF.md §4.4 (ds4_engram_layout_valid) and shape coherence.
  Status Validate(uint32_t n_vocab, uint32_t n_layer) const;
  void WriteMetadata(storage::GgufWriter& writer, const std::string& prefix) const;
};

// Table sizes as the Engram code derives them (docs/MODEL.md §10.1 (c)): for each layer, each
// order and each head, the next prime above a running start (vocab_base - 1 at each
// order's first head), skipping primes already used anywhere. Layer-major.
std::vector<uint64_t> EngramPrimes(uint64_t vocab_base, uint32_t n_layers, uint32_t max_ngram,
                                   uint32_t n_heads);

// Odd multipliers for synthetic models, each <= INT64_MAX / compressed_vocab so that
// id * m never overflows (real files carry NumPy's; those cannot be reproduced here).
std::vector<uint64_t> SyntheticEngramMultipliers(uint64_t seed,
                                                 const std::vector<uint32_t>& layer_ids,
                                                 uint32_t max_ngram, uint32_t compressed_vocab);

// A token -> compressed id map for synthetic models: tokens whose text differs only in
// ASCII case or a leading byte-level space ("Ġ") share an id, first seen first. The
// real map (NFKC, accent stripping, ...) comes from the source model's converter.
std::vector<uint32_t> SyntheticTokenMap(const std::vector<std::string>& tokens,
                                        uint32_t* compressed_vocab);

}  // namespace strata::engine

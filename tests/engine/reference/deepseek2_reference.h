// The deepseek2 forward pass written the obvious way, for tests only: every weight
// dequantised to f32 up front, plain loops, one token at a time, MLA in its naive form
// (per-head keys and values expanded from the cached latent at every step, no weight
// absorption), its own RoPE/YaRN and routing, mHC with its Sinkhorn projection, and
// Engram's hash, row decoding and module math written from the docs' text; and V4's
// attention (deepseek4_reference.cc), where every compressed entry and the indexer's
// choice are recomputed from their definitions for every query. The fast path must
// agree with it.
//
// Like ggml, the fast path multiplies quantised weights by activations that are
// themselves quantised per block (8 bits; blocks of 32 for Q4_0/Q5_0/Q8_0, of 256 for
// the k-quants). With `quantize_activations` the reference applies the same rounding to
// each input vector before its product, so the two differ only in summation order;
// without it, it is the pure f32 model (the two agree only on float weights, since an
// 8-bit rounding can flip a near-tied expert choice).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "engine/deepseek2_config.h"
#include "engine/model_file.h"

namespace strata::testing {

// x * w / sqrt(mean(x^2) + eps), summed in double; w null: unweighted.
std::vector<float> RmsNorm(const std::vector<float>& x, const float* w, float eps);

class ReferenceDeepseek2 {
 public:
  ReferenceDeepseek2(const engine::ModelFile& file, const engine::Deepseek2Config& config,
                     bool quantize_activations = true);

  // Appends `token` at the next position and returns the logits after it.
  std::vector<float> Forward(int32_t token);
  // Forgets the sequence (keeps the dequantised weights).
  void Reset();

 private:
  const std::vector<float>& W(const std::string& name) const { return weights_.at(name); }
  bool Has(const std::string& name) const { return weights_.count(name) > 0; }
  // y[out] = sum_i W[out][in] * x[in] for a row-major [out][in] matrix.
  std::vector<float> Linear(const std::string& name, const std::vector<float>& x, size_t out,
                            size_t row0 = 0) const;
  std::vector<float> Mlp(const std::string& gate, const std::string& up, const std::string& down,
                         const std::vector<float>& x, size_t ff, size_t row0_gate,
                         size_t row0_down, float clamp = 0) const;
  void Rope(float* x, int64_t pos) const;
  std::vector<float> AttentionBlock(uint32_t il, const std::vector<float>& x, double scale);
  std::vector<float> FeedForwardBlock(uint32_t il, const std::vector<float>& x);
  // V4 (docs/MODEL.md §3.3, §8).
  void RopeV4(float* x, int64_t pos, bool compress) const;
  std::vector<float> AttentionV4(uint32_t il, const std::vector<float>& x);
  // Compressed entry w of a layer's main (indexer = false) or indexer compressor.
  std::vector<float> CompressedEntry(uint32_t il, bool indexer, int64_t w) const;
  std::vector<int64_t> IndexerTopK(uint32_t il, const std::vector<float>& h,
                                   const std::vector<float>& q_res) const;
  struct Mix {
    std::vector<double> pre, post;
    std::vector<std::vector<double>> comb;  // comb[j][k]: stream j -> stream k
  };
  Mix HyperMix(const std::string& site, const std::vector<std::vector<float>>& X, bool head) const;
  void DecodeTableRow(const uint8_t* row, storage::GgmlType type, float* out) const;
  std::vector<uint64_t> EngramRows(size_t layer_index) const;
  void Engram(uint32_t il, size_t layer_index, std::vector<std::vector<float>>& X);

  engine::Deepseek2Config c_;
  bool quantize_activations_;
  std::map<std::string, std::vector<float>> weights_;
  std::map<std::string, storage::GgmlType> types_;
  int64_t pos_ = 0;
  std::vector<std::vector<std::vector<float>>> latents_;    // [layer][pos][Rkv]
  std::vector<std::vector<std::vector<float>>> rope_keys_;  // [layer][pos][dr]
  std::vector<int32_t> history_;                            // tokens so far (Engram)
  // Demo-form Engram conv inputs: [engram layer][pos][stream][E].
  std::vector<std::vector<std::vector<std::vector<float>>>> conv_inputs_;
  // V4, per layer and position: the roped key, and the compressors' raw projections.
  struct V4Token {
    std::vector<float> kv, comp_kv, comp_gate, index_kv, index_gate;
  };
  std::vector<std::vector<V4Token>> v4_;
};

}  // namespace strata::testing

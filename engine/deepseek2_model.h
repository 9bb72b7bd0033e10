// The deepseek2 forward pass (DeepSeek-V2/V2-Lite/V3/R1 and the Kimi-K2 class), fast
// path: MLA with the absorbed-weight form (attn_k_b folded into the query, attn_v_b
// applied after attention; old attn_kv_b files are split at load), a compressed KV
// cache, dense leading layers, softmax (V2) or sigmoid + bias group-limited (V3)
// routing, shared experts, final norm and head. Prefill runs a chunk of tokens as
// matrix-matrix products and computes each routed expert once for all the chunk's
// tokens that chose it; decode is one token at a time. Math: docs/MODEL.md §1-5.
//
// Deepseek2Model holds the weights (immutable, shareable); Deepseek2Session holds one
// sequence's state (KV cache, position, scratch) and is thread-compatible. Results are
// bit-identical for any thread count and any prefill chunking.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "engine/deepseek2_config.h"
#include "engine/kernels/matmul.h"
#include "engine/kv_cache.h"
#include "engine/model_file.h"
#include "engine/rope.h"
#include "engine/thread_pool.h"
#include "prefetch/prefetcher.h"
#include "engine/engram_hash.h"
#include "engine/mhc.h"
#include "engine/v4_attention.h"
#include "tiers/engram_row_cache.h"
#include "tiers/expert_cache.h"
#include "util/status.h"

namespace strata::engine {

struct Deepseek2Layer {
  // Attention. Shapes in GGML ne order.
  const float* attn_norm = nullptr;   // [E]
  kernels::WeightMatrix q_a, q_b, q;  // [E, Rq], [Rq, H*(dn+dr)] or [E, H*(dn+dr)]
  const float* q_a_norm = nullptr;    // [Rq]
  kernels::WeightMatrix kv_a_mqa;     // [E, Rkv+dr]
  const float* kv_a_norm = nullptr;   // [Rkv]
  kernels::WeightMatrix k_b;          // [dn, Rkv, H]: head h = rows h*Rkv..
  kernels::WeightMatrix v_b;          // [Rkv, dv, H]: head h = rows h*dv..
  kernels::WeightMatrix wo;           // [H*dv, E]
  const float* ffn_norm = nullptr;    // [E]
  // Dense FFN (leading layers).
  kernels::WeightMatrix ffn_gate, ffn_up, ffn_down;
  // MoE.
  kernels::WeightMatrix router;              // [E, X]
  const float* router_bias = nullptr;        // [X] or null
  kernels::WeightMatrix gate_exps, up_exps;  // [E, Fe, X]: expert e = rows e*Fe..
  kernels::WeightMatrix down_exps;           // [Fe, E, X]: expert e = rows e*E..
  kernels::WeightMatrix gate_shexp, up_shexp, down_shexp;
  bool moe = false;
  // V4 (deepseek4): the hybrid attention, hash routing and SwiGLU clamps (0: none).
  V4AttentionWeights v4;
  const int32_t* tid2eid = nullptr;  // [V][top-k] expert ids (hash layers)
  float clamp_exp = 0, clamp_shexp = 0;
  // mHC sites (hc_mult > 1).
  HcSite hc_attn, hc_ffn;
  // Engram (layers in engram.layer_ids), applied to the streams before attention.
  int engram = -1;                           // index among the Engram layers
  kernels::WeightMatrix engram_kv;           // v41: [De, (HC+1)*E]
  kernels::WeightMatrix engram_k, engram_v;  // demo: [De, HC*E], [De, E]
  const float* engram_k_bias = nullptr;      // demo: [E, HC]
  const float* engram_v_bias = nullptr;      // demo: [E]
  const float* engram_conv_norm = nullptr;   // demo: [E, HC]
  const float* engram_conv = nullptr;        // demo: [K, HC*E]
  const float* engram_q_norm = nullptr;      // [E, HC]
  const float* engram_k_norm = nullptr;      // [E, HC]
  const uint8_t* engram_table = nullptr;     // rows in RAM; null: the row cache has them
};

struct Deepseek2Options {
  unsigned threads = 0;  // 0: physical cores
  kernels::Isa isa = kernels::BestIsa();
  prefetch::PrefetchMode prefetch = prefetch::PrefetchMode::kAll;
  uint32_t lookahead = 2;  // MoE layers the prefetcher looks ahead
};

class Deepseek2Model {
 public:
  // Binds and shape-checks every tensor against the metadata; errors name the tensor.
  // Routed experts come from `experts` when given (it must outlive the model), else
  // from `file`, which must then hold every tensor. Engram tables the file did not
  // load come through `engram_rows` (which must outlive the model).
  static Result<std::unique_ptr<Deepseek2Model>> Load(
      std::unique_ptr<ModelFile> file, tiers::ExpertCache* experts = nullptr,
      tiers::EngramRowCache* engram_rows = nullptr);

  // RAM the model allocates at load beyond the file's tensors, at its peak (legacy
  // attn_kv_b split into k_b and v_b); the budget counts it with the pinned weights.
  static uint64_t DerivedBytes(const storage::GgufFile& file, const Deepseek2Config& config);

  const Deepseek2Config& config() const { return config_; }
  const ModelFile& file() const { return *file_; }
  const Deepseek2Layer& layer(uint32_t il) const { return layers_[il]; }
  const kernels::WeightMatrix& token_embd() const { return token_embd_; }
  const kernels::WeightMatrix& output() const { return output_; }
  const float* output_norm() const { return output_norm_; }
  const Rope& rope() const { return *rope_; }
  // The rope of `layer`: V4's compressed layers use the YaRN table (docs/MODEL.md §3.3).
  const Rope& rope(uint32_t layer) const {
    return rope_compress_ && layers_[layer].v4.ratio != 0 ? *rope_compress_ : *rope_;
  }
  float kq_scale() const { return kq_scale_; }
  tiers::ExpertCache* experts() const { return experts_; }
  tiers::EngramRowCache* engram_rows() const { return engram_rows_; }
  const HcSite& hc_head() const { return hc_head_; }
  HcParams hc_params() const;
  // Tokens one prefill chunk may hold so that its Engram rows fit the row cache.
  int64_t engram_chunk_limit() const;
  std::vector<uint32_t> moe_layers() const;

 private:
  Deepseek2Model() = default;
  Status BindLayer(uint32_t il);
  Status BindEngram(uint32_t il);
  Status BindSite(const std::string& prefix, uint64_t rows, uint64_t scales, HcSite* site);
  Status SplitLegacyKvB(uint32_t il);
  Status BindMla(uint32_t il);
  Status BindMoe(uint32_t il);
  Status BindV4Attention(uint32_t il);
  Status BindCompressor(const std::string& prefix, uint64_t width, uint64_t dim, uint32_t ratio,
                        CompressorWeights* out);
  Status BindHashRouting(uint32_t il);
  // A small tensor as f32: F32 in place, F16/BF16 converted into owned_.
  Result<const float*> FloatTensor(const std::string& name, std::vector<uint64_t> ne);

  std::unique_ptr<ModelFile> file_;
  tiers::ExpertCache* experts_ = nullptr;
  tiers::EngramRowCache* engram_rows_ = nullptr;
  HcSite hc_head_;
  Deepseek2Config config_;
  std::vector<Deepseek2Layer> layers_;
  kernels::WeightMatrix token_embd_, output_;
  const float* output_norm_ = nullptr;
  std::unique_ptr<Rope> rope_;
  std::unique_ptr<Rope> rope_compress_;  // V4 only
  float kq_scale_ = 1.0f;
  std::vector<std::vector<float>> owned_;          // small tensors converted to f32
  std::vector<std::vector<uint8_t>> owned_bytes_;  // k_b/v_b split from legacy attn_kv_b
};

// Routing of one token: the chosen experts and their weights, in selection order.
struct RoutedExperts {
  std::vector<int32_t> ids;
  std::vector<float> weights;
};
// V2 softmax, V3 sigmoid + bias with group-limited top-k, or V4 sqrt-softplus + bias;
// weight norm and scale. `fixed_ids` (V4 hash layers): the experts are these top-k,
// only their weights come from the scores.
RoutedExperts RouteToken(const Deepseek2Config& config, const float* logits, const float* bias,
                         const int32_t* fixed_ids = nullptr);

// Where a session's time went, summed over Eval calls (wall time on the calling
// thread; expert waits are the cache's stall, not counted here).
struct SessionTimings {
  uint64_t attention_ns = 0;
  uint64_t feed_forward_ns = 0;  // all FFNs: dense, routers, shared and routed experts, waits
  uint64_t experts_ns = 0;       // routed experts' compute
  uint64_t wait_ns = 0;          // waiting in ExpertCache::Next()
  uint64_t head_ns = 0;          // embedding, final norm and output head
  uint64_t engram_ns = 0;        // Engram modules, waits for rows included
  uint64_t hyper_ns = 0;         // mHC mixing
};

class Deepseek2Session {
 public:
  Deepseek2Session(const Deepseek2Model& model, uint32_t n_ctx, storage::GgmlType kv_type,
                   Deepseek2Options options);

  // Appends `tokens` at the current position, in chunks of at most `batch` tokens, and
  // writes the logits after the last token into `logits` (n_vocab values).
  // Errors: a token outside the vocabulary, a context that would overflow, an expert
  // read that failed for good (the session's position is then unchanged).
  Status Eval(std::span<const int32_t> tokens, std::vector<float>* logits, int64_t batch = 512);

  int64_t n_past() const { return n_past_; }
  uint32_t n_ctx() const { return cache_.n_ctx(); }
  void Reset();
  ThreadPool& pool() { return pool_; }
  const SessionTimings& timings() const { return timings_; }
  const V4Counters& v4_counters() const { return v4_counters_; }

 private:
  Status EvalChunk(const int32_t* tokens, int64_t n, bool want_logits, std::vector<float>* logits);
  // Each sub-block reads its input `in` [n][E] and writes its output to y_ [n][E].
  void Attention(uint32_t il, int64_t n, const float* in);
  void V4Attention(uint32_t il, int64_t n, const float* in);
  // Top-k CSA entries for each chunk token, by the lightning indexer (docs/MODEL.md §8.9).
  void V4Indexer(uint32_t il, int64_t n, const float* h, const float* q_res,
                 std::vector<std::vector<int64_t>>* selected);
  Status FeedForward(uint32_t il, int64_t n, const float* in);
  Status Moe(uint32_t il, int64_t n);
  // Runs a sub-block at one residual site: straight (one stream) or through mHC.
  template <typename SubBlock>
  Status Site(const HcSite& site, int64_t n, SubBlock&& sub_block);
  // Hashes the chunk's tokens and asks the row cache for every Engram layer's rows.
  Status AddressEngram(const int32_t* tokens, int64_t n);
  Status Engram(uint32_t il, int64_t n);
  Status GatherEngram(uint32_t il, int64_t n);
  // Takes (and drops) the rows of the Engram layers this chunk requested but did not reach.
  void ReleaseEngram(int64_t n);
  std::vector<float> SaveConvRing(int64_t start, int64_t n) const;
  void RestoreConvRing(int64_t start, const std::vector<float>& saved);
  // Router lookahead: the routers of the next MoE layers applied to this layer's
  // normalized hidden state; their top-k become prefetch hints.
  void HintLookahead(uint32_t il, const float* h);
  // The rows of expert `e` in each stack, from a cache pin or from the file.
  void ExpertSwiGlu(const Deepseek2Layer& L, const tiers::ExpertView& v, const float* x, int64_t n,
                    float* out);
  void SwiGlu(const kernels::WeightMatrix& gate, const kernels::WeightMatrix& up,
              const kernels::WeightMatrix& down, int64_t gate_row0, int64_t down_row0, int64_t ff,
              const float* x, int64_t n, float* out, float clamp = 0);

  const Deepseek2Model& model_;
  const Deepseek2Config& c_;
  Deepseek2Options options_;
  ThreadPool pool_;
  MlaKvCache cache_;
  prefetch::Prefetcher prefetcher_;
  SessionTimings timings_;
  int64_t n_past_ = 0;
  uint32_t hc_ = 1;  // residual streams
  // Engram state: the hash history and, for the demo form, the conv inputs of the
  // last positions ([layer][ring][HC*E], ring slot = position % ring).
  std::optional<EngramHasher> hasher_;
  std::vector<uint64_t> engram_ids_;  // this chunk's rows: [token][layer][col]
  uint32_t engram_requested_ = 0;     // Engram layers of this chunk whose rows were asked for
  uint32_t engram_gathered_ = 0;      // ... and whose rows were taken
  std::vector<float> conv_ring_;
  int64_t conv_ring_len_ = 0;
  std::vector<float> engram_e_, engram_kv_, engram_v_;
  std::vector<HcMix> mix_;
  // V4: per-layer attention state, the undo log of the chunk being evaluated, and the
  // chunk's tokens (hash routing reads them).
  std::vector<V4LayerState> v4_state_;
  UndoLog v4_undo_;
  V4Counters v4_counters_;
  const int32_t* chunk_tokens_ = nullptr;
  // Scratch, sized for the largest chunk seen.
  std::vector<float> x_, y_, site_in_, h_, buf_a_, buf_b_, buf_c_, attn_out_;
  std::vector<float> q_abs_, rows_f32_, probs_, o_lat_;  // attention, see Attention()
  kernels::ActivationBuffer act_;
};

}  // namespace strata::engine

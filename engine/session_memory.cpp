#include "engine/session_memory.h"

#include <algorithm>
#include <initializer_list>

#include "engine/blocks/mhc.h"
#include "util/size_parse.h"

namespace strata::engine {
namespace {

constexpr uint64_t kF = sizeof(float);

uint64_t Max(std::initializer_list<uint64_t> v) { return std::max(v); }

// The MLA attention of one layer at a time (engine/blocks/mla_attention.cpp).
uint64_t MlaScratch(const Deepseek2Config& c, uint64_t n, uint64_t S) {
  const uint64_t H = c.n_head, dn = c.qk_nope, dr = c.qk_rope, dv = c.v_head;
  const uint64_t Rkv = c.kv_lora_rank, Rq = c.q_lora_rank, kq = Rkv + dr;
  const uint64_t sub = std::max<uint64_t>(1, kScoreFloats / std::max<uint64_t>(H * S, 1));
  const uint64_t probs = std::min(sub, n) * H * S * kF;
  return n * (Rq + H * (dn + dr) + (Rkv + dr) + H * kq + H * dv + H * Rkv) * kF  // buf_a..o_lat
         + S * kq * kF                                                          // rows_f32
         + probs;
}

// V4's hybrid attention of one layer at a time, and the undo log of a whole chunk.
uint64_t V4Scratch(const Deepseek2Config& c, uint64_t n, uint64_t S, unsigned threads) {
  const V4Config& v = c.v4;
  const uint64_t H = c.n_head, D = v.head_dim, Rq = c.q_lora_rank, E = c.n_embd;
  const uint64_t G = std::max<uint32_t>(v.o_groups, 1), Ro = v.o_lora_rank;
  const uint64_t Ih = v.index_heads, Id = v.index_dim, W = v.sliding_window;
  uint64_t width = 0, undo = 0;
  for (uint32_t il = 0; il < c.n_layer; ++il) {
    const uint64_t r = v.ratio(il), cw = v.compressor_width(il);
    width = std::max(width, cw);
    // The undo log keeps the first old value of each row an Eval overwrites: at most
    // the window, both compressors' pending windows (current and previous), and a
    // record for each.
    constexpr uint64_t kRecord = 96;
    const uint64_t iw = r == 4 ? 2 * Id : 0;  // CSA's indexer compressor
    const uint64_t rows = W * (D * kF + kRecord) + (r ? 4 * r * ((cw + iw) * kF + kRecord) : 0);
    undo += rows;
  }
  const uint64_t entries = S / 4 + 1;  // CSA entries a query may score
  const uint64_t attention = n * (E + Rq + 2 * H * D + D) * kF       // h, buf_a..c, attn_out
                             + 2 * n * width * kF                    // compressor inputs
                             + n * (Ih * Id + Ih) * kF               // indexer queries
                             + n * entries * sizeof(int64_t)         // candidates per token
                             + entries * kF                          // scores
                             + n * (H / G * D + G * Ro + Ro) * kF    // grouped output
                             + threads * (W + entries) * (sizeof(void*) + 4 * kF);  // keys
  return attention + undo;
}

// The FFN of one layer: dense, shared and routed experts, routers.
uint64_t FeedForwardScratch(const Deepseek2Config& c, uint64_t n) {
  const uint64_t E = c.n_embd, X = c.n_expert, K = c.n_expert_used, Fe = c.n_ff_exp;
  const uint64_t ff = Max({c.n_ff, Fe * c.n_expert_shared, Fe});
  const uint64_t dense = 2 * n * ff * kF;  // gate and up rows
  const uint64_t moe = n * X * kF                          // router logits
                       + n * K * (2 * sizeof(int64_t) + 2 * kF + 16)  // routes and users
                       + X * 3 * sizeof(void*)                // the users' vectors
                       + n * E * kF                          // shared experts' output
                       + n * K * E * kF                      // each route's output
                       + 2 * n * E * kF                      // one expert's tokens in and out
                       + 2 * n * Fe * kF;                    // its gate and up rows
  return dense + (X ? moe : 0);
}

}  // namespace

SessionMemory EstimateSessionMemory(const Deepseek2Config& c, const SessionShape& shape) {
  SessionMemory m;
  const uint64_t S = shape.n_ctx;
  const uint64_t n = std::min<uint64_t>(std::max<int64_t>(shape.batch, 1), std::max<uint64_t>(S, 1));
  const uint64_t E = c.n_embd, hc = std::max<uint32_t>(c.hc_mult, 1);
  const unsigned threads = std::max(shape.threads, 1u);
  if (c.is_v4()) {
    const V4Config& v = c.v4;
    for (uint32_t il = 0; il < c.n_layer; ++il) {
      const uint64_t r = v.ratio(il), cw = v.compressor_width(il);
      uint64_t layer = uint64_t{v.sliding_window} * v.head_dim * kF;
      if (r) {
        layer += 4 * r * cw * kF + (S / r + 1) * v.head_dim * kF;  // pending windows, entries
        if (r == 4) layer += 4 * r * 2 * v.index_dim * kF + (S / r + 1) * v.index_dim * kF;
      }
      m.kv_bytes += layer;
    }
  } else {
    m.kv_bytes = uint64_t{c.n_layer} * S * (c.kv_lora_rank + c.qk_rope) *
                 (shape.kv_type == storage::GgmlType::kF32 ? 4 : 2);
  }
  uint64_t attention = c.is_v4() ? V4Scratch(c, n, S, threads) : MlaScratch(c, n, S);
  // The residual streams, the sub-block's input and output, mHC's coefficients.
  uint64_t residual = n * (hc + 3) * E * kF + n * sizeof(HcMix);
  uint64_t engram = 0;
  if (c.engram.enabled()) {
    const EngramConfig& g = c.engram;
    const uint64_t De = g.embd(), per_token = uint64_t{g.n_layers()} * g.cols();
    engram = n * per_token * sizeof(uint64_t) + n * De * kF + n * (hc + 2) * E * kF +
             2 * uint64_t{g.n_layers()} * (uint64_t{g.conv_kernel} * g.conv_dilation + 1) * hc * E * kF;  // ring, its saved copy
  }
  // Prepared activations of the widest input a matmul takes, at most 4 bytes a value.
  const uint64_t widest = Max({E, c.q_lora_rank, uint64_t{c.n_head} * Max({c.v_head, c.v4.head_dim}),
                               c.n_ff, uint64_t{c.n_ff_exp} * std::max<uint32_t>(c.n_expert_shared, 1),
                               c.engram.enabled() ? c.engram.embd() : 0});
  const uint64_t activations = (n + 1) * widest * kF;
  // Each sequence keeps its own KV cache, attention buffers and Engram history; a
  // batched step returns one row of logits per sequence.
  const uint64_t seqs = std::max(shape.n_seq, 1u);
  m.kv_bytes *= seqs;
  attention *= seqs;
  engram *= seqs;
  const uint64_t logits = 2 * seqs * uint64_t{c.n_vocab} * kF;  // the caller's vectors, one copy
  // The attention's buffers are the session's members and keep their size while the
  // FFN's are allocated: both are live at the FFN's peak.
  m.scratch_bytes = residual + engram + activations + logits + attention +
                    FeedForwardScratch(c, n);
  // Allocator rounding and the small vectors not listed: one part in sixteen; the
  // thread pool, the prefetcher's tables and each thread's kernel panels: a fixed part.
  m.scratch_bytes += m.scratch_bytes / 16 + (256 << 10) + uint64_t{threads} * (64 << 10);
  return m;
}

std::string DescribeSession(const SessionShape& shape, const SessionMemory& m) {
  return "-c " + std::to_string(shape.n_ctx) + " -b " + std::to_string(shape.batch) +
         (shape.n_seq > 1 ? " x " + std::to_string(shape.n_seq) + " sequences" : "") +
         ": KV cache " + FormatBytes(m.kv_bytes) + " + scratch " + FormatBytes(m.scratch_bytes);
}

}  // namespace strata::engine

#include "engine/blocks/mla_attention.h"

#include <algorithm>
#include <cmath>

#include "engine/kernels/vector_ops.h"
#include "engine/session_memory.h"

namespace strata::engine {

using kernels::RmsNorm;
using kernels::RowDots;
using kernels::RowSlice;

MlaAttention::MlaAttention(BlockContext& ctx, uint32_t n_ctx, storage::GgmlType kv_type)
    : ctx_(ctx),
      cache_(ctx.c.n_layer, n_ctx, ctx.c.kv_lora_rank, ctx.c.qk_rope, kv_type) {}

void MlaAttention::Forward(uint32_t il, const Chunk& chunk, const float* in, float* out) {
  const Deepseek2Config& c = ctx_.c;
  const DeepseekModel& model = ctx_.model;
  const DeepseekLayer& L = model.layer(il);
  const int64_t n = chunk.n, past = chunk.pos;
  ThreadPool& pool = ctx_.pool;
  kernels::ActivationBuffer& act = ctx_.act;
  std::vector<float>& hn = ctx_.h;
  const int64_t E = c.n_embd, H = c.n_head, dn = c.qk_nope, dr = c.qk_rope, dv = c.v_head;
  const int64_t Rkv = c.kv_lora_rank, Rq = c.q_lora_rank, qdim = H * (dn + dr);
  const kernels::Isa isa = ctx_.isa;
  hn.resize(static_cast<size_t>(n * E));
  for (int64_t t = 0; t < n; ++t) RmsNorm(&in[t * E], L.attn_norm, E, c.rms_eps, &hn[t * E]);

  // q = q_b(norm(q_a(h))) or q(h): [n][H][dn | dr]
  q_.resize(static_cast<size_t>(n * qdim));
  if (Rq > 0) {
    q_a_.resize(static_cast<size_t>(n * Rq));
    kernels::MatMul(L.q_a, hn.data(), n, q_a_.data(), pool, isa, act);
    for (int64_t t = 0; t < n; ++t)
      RmsNorm(&q_a_[t * Rq], L.q_a_norm, Rq, c.rms_eps, &q_a_[t * Rq]);
    kernels::MatMul(L.q_b, q_a_.data(), n, q_.data(), pool, isa, act);
  } else {
    kernels::MatMul(L.q, hn.data(), n, q_.data(), pool, isa, act);
  }
  // [latent | rope key] = kv_a_mqa(h); the cache keeps norm(latent) and rope(key).
  kv_.resize(static_cast<size_t>(n * (Rkv + dr)));
  kernels::MatMul(L.kv_a_mqa, hn.data(), n, kv_.data(), pool, isa, act);
  for (int64_t t = 0; t < n; ++t) {
    const int64_t pos = past + t;
    float* kv = &kv_[t * (Rkv + dr)];
    RmsNorm(kv, L.kv_a_norm, Rkv, c.rms_eps, kv);
    model.rope().Apply(kv + Rkv, pos);
    cache_.Write(il, static_cast<uint32_t>(pos), kv, kv + Rkv);
    for (int64_t h = 0; h < H; ++h)
      model.rope().Apply(&q_[t * qdim + h * (dn + dr) + dn], pos);
  }

  // Attention in five phases; every output value is computed by one thread in a fixed
  // order, so results do not depend on the thread count.
  const int64_t kq = Rkv + dr;  // [latent | rope] width of a query and of a cache row
  const int64_t S = past + n;
  // 1. Absorbed queries, per (token, head): [k_b_h^T q_nope | q_pe].
  q_abs_.resize(static_cast<size_t>(n * H * kq));
  pool.ParallelFor(n * H, [&](int64_t begin, int64_t end) {
    kernels::ActivationBuffer scratch;
    for (int64_t th = begin; th < end; ++th) {
      const int64_t t = th / H, h = th % H;
      const float* q = &q_[t * qdim + h * (dn + dr)];
      RowDots(RowSlice(L.k_b, h * Rkv, Rkv), q, &q_abs_[th * kq], isa, scratch);
      std::copy_n(q + dn, dr, &q_abs_[th * kq + Rkv]);
    }
  });
  // 2. The cache rows in f32, converted once for every head and token of the chunk.
  rows_f32_.resize(static_cast<size_t>(S * kq));
  pool.ParallelFor(
      S,
      [&](int64_t begin, int64_t end) {
        for (int64_t s = begin; s < end; ++s) {
          const uint8_t* row = cache_.Row(il, static_cast<uint32_t>(s));
          if (cache_.type() == storage::GgmlType::kF16) {
            kernels::ConvertF16ToF32(reinterpret_cast<const uint16_t*>(row), &rows_f32_[s * kq], kq,
                                     isa);
          } else {
            std::copy_n(reinterpret_cast<const float*>(row), kq, &rows_f32_[s * kq]);
          }
        }
      },
      16);
  attn_out_.resize(static_cast<size_t>(n * H * dv));
  o_lat_.resize(static_cast<size_t>(n * H * Rkv));
  const float kq_scale = model.kq_scale();
  // Scores take n * H * S floats; token sub-batches keep that near kScoreFloats.
  const int64_t sub = std::max<int64_t>(1, kScoreFloats / (H * S));
  for (int64_t t0 = 0; t0 < n; t0 += sub) {
    const int64_t tn = std::min(sub, n - t0);
    probs_.resize(static_cast<size_t>(tn * H * S));
    // 3. Scores, split by cache position: a block of rows meets four heads at a time,
    // each token over its causal part of the block.
    pool.ParallelFor(
        S,
        [&](int64_t begin, int64_t end) {
          for (int64_t t = std::max<int64_t>(0, begin - past - t0); t < tn; ++t) {
            const int64_t stop = std::min(end, past + t0 + t + 1);  // causal
            for (int64_t h = 0; h < H; h += 4) {
              kernels::DotsWithRows(&q_abs_[((t0 + t) * H + h) * kq], kq,
                                    static_cast<int>(std::min<int64_t>(4, H - h)),
                                    kernels::RowSet{&rows_f32_[begin * kq], kq}, stop - begin, kq,
                                    kq_scale, &probs_[(t * H + h) * S + begin], S, isa);
            }
          }
        },
        16);
    // 4. Softmax per (token, head) over its causal range.
    pool.ParallelFor(tn * H, [&](int64_t begin, int64_t end) {
      for (int64_t th = begin; th < end; ++th) {
        const int64_t len = past + t0 + th / H + 1;
        float* p = &probs_[th * S];
        const float max = *std::max_element(p, p + len);
        float sum = 0;
        for (int64_t s = 0; s < len; ++s) sum += p[s] = std::exp(p[s] - max);
        const float inv = 1.0f / sum;
        for (int64_t s = 0; s < len; ++s) p[s] *= inv;
      }
    });
    // 5. Weighted latents, split by latent dimension: o_lat[t][h] = sum_s p * row_s,
    // summed over s in order. Strips of 32 latents of every cache row stay in L2 while
    // all heads of all tokens read them, four heads per pass over the strip.
    pool.ParallelFor(
        Rkv,
        [&](int64_t r0, int64_t r1) {
          for (int64_t c0 = r0; c0 < r1; c0 += 32) {
            const int64_t cn = std::min<int64_t>(32, r1 - c0);
            for (int64_t t = 0; t < tn; ++t) {
              const int64_t len = past + t0 + t + 1;  // causal
              for (int64_t h = 0; h < H; h += 4) {
                const int64_t th = t * H + h;
                kernels::WeightedRowSums(&probs_[th * S], S,
                                         static_cast<int>(std::min<int64_t>(4, H - h)),
                                         kernels::RowSet{&rows_f32_[c0], kq}, len, cn,
                                         &o_lat_[(t0 * H + th) * Rkv + c0], Rkv, isa);
              }
            }
          }
        },
        64);
  }
  // 6. Value up-projection per (token, head).
  pool.ParallelFor(n * H, [&](int64_t begin, int64_t end) {
    kernels::ActivationBuffer scratch;
    for (int64_t th = begin; th < end; ++th) {
      const int64_t h = th % H;
      RowDots(RowSlice(L.v_b, h * dv, dv), &o_lat_[th * Rkv], &attn_out_[th * dv], isa, scratch);
    }
  });
  kernels::MatMul(L.wo, attn_out_.data(), n, out, pool, isa, act);
}

}  // namespace strata::engine

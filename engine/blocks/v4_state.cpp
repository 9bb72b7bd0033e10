#include "engine/blocks/v4_state.h"

#include <algorithm>
#include <cmath>

#include "engine/deepseek4_config.h"

namespace strata::engine {

void UndoLog::Save(float* dst, size_t n) {
  // Only the first save of a row in a chunk matters: rollback must restore what was
  // there before the chunk, and later saves would hold the chunk's own values. This
  // bounds the log by the state's size, not by the chunk's length.
  if (!saved_.insert(dst).second) return;
  entries_.push_back({dst, n, values_.size()});
  values_.insert(values_.end(), dst, dst + n);
}

void UndoLog::Rollback() {
  for (auto it = entries_.rbegin(); it != entries_.rend(); ++it) {
    std::copy_n(&values_[it->offset], it->n, it->dst);
  }
  Clear();
}

void UndoLog::Clear() {
  saved_.clear();
  entries_.clear();
  values_.clear();
}

Compressor::Compressor(uint32_t ratio, uint32_t dim, int rope_dims)
    : ratio_(ratio),
      dim_(dim),
      width_((ratio == kCsaRatio ? 2 : 1) * dim),
      rope_dims_(rope_dims),
      overlap_(ratio == kCsaRatio) {
  if (ratio_ == 0) return;
  kv_.assign(static_cast<size_t>(ratio_) * width_, 0.0f);
  gate_.assign(kv_.size(), 0.0f);
  if (overlap_) {
    prev_kv_.assign(kv_.size(), 0.0f);
    prev_gate_.assign(kv_.size(), 0.0f);
  }
}

void Compressor::Reserve(uint32_t n_ctx) {
  if (ratio_) entries_.reserve((static_cast<size_t>(n_ctx) / ratio_ + 1) * dim_);
}

void Compressor::Reset() {
  has_prev_ = 0;
  entries_.clear();
}

void Compressor::Add(int64_t pos, const float* kv, const float* gate, const CompressorWeights& w,
                     float rms_eps, const Rope& rope, UndoLog& undo) {
  const uint32_t slot = static_cast<uint32_t>(pos % ratio_);
  float* kv_row = &kv_[static_cast<size_t>(slot) * width_];
  float* gate_row = &gate_[static_cast<size_t>(slot) * width_];
  undo.Save(kv_row, width_);
  undo.Save(gate_row, width_);
  std::copy_n(kv, width_, kv_row);
  for (uint32_t c = 0; c < width_; ++c) gate_row[c] = gate[c] + w.ape[slot * width_ + c];
  if (slot + 1 != ratio_) return;

  // The window is complete: entry w mixes, per channel, the slots' values by the
  // softmax of their gates. CSA: the previous window's first halves (Ca) and this
  // window's second halves (Cb); HCA: this window's values.
  std::vector<float> entry(dim_);
  const uint32_t half = overlap_ ? dim_ : 0;  // offset of the current window's values
  for (uint32_t c = 0; c < dim_; ++c) {
    float max = -INFINITY;
    const bool prev = overlap_ && has_prev_ != 0;
    for (uint32_t j = 0; j < ratio_; ++j) {
      if (prev) max = std::max(max, prev_gate_[j * width_ + c]);
      max = std::max(max, gate_[j * width_ + half + c]);
    }
    float sum = 0, acc = 0;
    for (uint32_t j = 0; j < ratio_; ++j) {
      if (prev) {
        const float e = std::exp(prev_gate_[j * width_ + c] - max);
        sum += e;
        acc += e * prev_kv_[j * width_ + c];
      }
      const float e = std::exp(gate_[j * width_ + half + c] - max);
      sum += e;
      acc += e * kv_[j * width_ + half + c];
    }
    entry[c] = acc / sum;
  }
  float ss = 0;
  for (float v : entry) ss += v * v;
  const float scale = 1.0f / std::sqrt(ss / static_cast<float>(dim_) + rms_eps);
  for (uint32_t c = 0; c < dim_; ++c) entry[c] *= scale * w.norm[c];
  rope.Apply(&entry[dim_ - rope_dims_], pos - (ratio_ - 1));  // position w * ratio
  entries_.insert(entries_.end(), entry.begin(), entry.end());
  if (overlap_) {
    undo.Save(prev_kv_.data(), prev_kv_.size());
    undo.Save(prev_gate_.data(), prev_gate_.size());
    undo.Save(&has_prev_, 1);
    prev_kv_ = kv_;
    prev_gate_ = gate_;
    has_prev_ = 1;
  }
}

V4LayerState::V4LayerState(uint32_t ratio, uint32_t window_len, uint32_t head_dim,
                           uint32_t index_dim, int rope_dims)
    : window(static_cast<size_t>(window_len) * head_dim, 0.0f),
      compressor(ratio, head_dim, rope_dims),
      index_compressor(ratio == kCsaRatio ? ratio : 0, index_dim, rope_dims) {}

void V4LayerState::Reserve(uint32_t n_ctx) {
  compressor.Reserve(n_ctx);
  index_compressor.Reserve(n_ctx);
}

void V4LayerState::Reset() {
  compressor.Reset();
  index_compressor.Reset();
}

void Compressor::Save(ByteWriter& out) const {
  out.PutFloats(kv_);
  out.PutFloats(gate_);
  out.PutFloats(prev_kv_);
  out.PutFloats(prev_gate_);
  out.Put(has_prev_);
  out.PutFloats(entries_);
}

bool Compressor::Load(ByteReader& in) {
  std::vector<float> entries;
  if (!in.GetFloats(&kv_, kv_.size()) || !in.GetFloats(&gate_, gate_.size()) ||
      !in.GetFloats(&prev_kv_, prev_kv_.size()) || !in.GetFloats(&prev_gate_, prev_gate_.size()) ||
      !in.Get(&has_prev_) || !in.GetFloatsUpTo(&entries, entries_.capacity()) ||
      (dim_ && entries.size() % dim_ != 0)) {
    return false;
  }
  // Into the reserved storage: the memory stays what was budgeted.
  entries_.assign(entries.begin(), entries.end());
  return true;
}

void V4LayerState::Save(ByteWriter& out) const {
  out.PutFloats(window);
  compressor.Save(out);
  index_compressor.Save(out);
}

bool V4LayerState::Load(ByteReader& in) {
  return in.GetFloats(&window, window.size()) && compressor.Load(in) && index_compressor.Load(in);
}

}  // namespace strata::engine

#include "tools/make_model.h"

#include <algorithm>
#include <cstring>
#include <cstdlib>
#include <filesystem>
#include <thread>

#include "engine/deepseek2_tensors.h"
#include "engine/gguf_vocab.h"
#include "engine/quant/quantize.h"
#include "storage/gguf_writer.h"
#include "tools/quant_recipe.h"
#include "tools/synthetic_weights.h"
#include "util/cache_dir.h"
#include "util/log.h"
#include "util/progress.h"

namespace strata::tools {

using engine::Deepseek2Config;
using engine::GatingFunc;
using engine::TensorRole;
using engine::TensorSpec;
using storage::GgmlType;

namespace {

// The DeepSeek-V3 embedding has 129280 rows although its tokenizer defines 128815 ids;
// the converter pads the rest with unused "[PAD<id>]" tokens. Synthetic models do too.
constexpr uint32_t kDeepseekV3VocabRows = 129280;

Deepseek2Config TinyConfig() {
  Deepseek2Config c;
  c.n_layer = 3;
  c.n_leading_dense = 1;
  c.n_embd = 256;
  c.n_ff = 512;
  c.n_head = 4;
  c.q_lora_rank = 128;
  c.kv_lora_rank = 64;
  c.qk_nope = 32;
  c.qk_rope = 32;
  c.v_head = 32;
  c.n_expert = 16;
  c.n_expert_used = 4;
  c.n_expert_shared = 1;
  c.n_ff_exp = 128;
  c.n_group = 4;
  c.n_group_used = 2;
  c.gating = GatingFunc::kSigmoid;
  c.expert_weights_norm = true;
  c.expert_weights_scale = 2.5f;
  c.context_length = 1024;
  c.rope_scaling_type = "yarn";
  c.rope_scaling_factor = 4.0f;
  c.rope_orig_context = 256;
  c.yarn_log_multiplier = 0.1f;
  return c;
}

Deepseek2Config SmallConfig() {
  Deepseek2Config c = TinyConfig();
  c.n_layer = 6;
  c.n_embd = 1024;
  c.n_ff = 2816;
  c.n_head = 8;
  c.q_lora_rank = 384;
  c.kv_lora_rank = 256;
  c.qk_nope = 64;
  c.qk_rope = 32;
  c.v_head = 64;
  c.n_expert = 32;
  c.n_ff_exp = 256;
  c.context_length = 4096;
  c.rope_orig_context = 1024;
  return c;
}

// DeepSeek-V2-Lite's shapes (its HF config), with the V3 tokenizer's vocabulary.
Deepseek2Config V2LiteConfig() {
  Deepseek2Config c;
  c.n_layer = 27;
  c.n_leading_dense = 1;
  c.n_embd = 2048;
  c.n_ff = 10944;
  c.n_head = 16;
  c.q_lora_rank = 0;
  c.kv_lora_rank = 512;
  c.qk_nope = 128;
  c.qk_rope = 64;
  c.v_head = 128;
  c.n_expert = 64;
  c.n_expert_used = 6;
  c.n_expert_shared = 2;
  c.n_ff_exp = 1408;
  c.n_group = 1;
  c.n_group_used = 1;
  c.gating = GatingFunc::kSoftmax;
  c.expert_weights_norm = false;
  c.expert_weights_scale = 1.0f;
  c.context_length = 163840;
  c.rope_scaling_type = "yarn";
  c.rope_scaling_factor = 40.0f;
  c.rope_orig_context = 4096;
  c.yarn_log_multiplier = 0.0707f;
  return c;
}

// DeepSeek-V3's shapes (docs/MODEL.md §11: its inference config) cut to `n_layer` layers:
// its 3 dense layers first, then MoE layers (a 4-layer slice has one).
Deepseek2Config V3SliceConfig() {
  Deepseek2Config c;
  c.n_layer = 4;
  c.n_leading_dense = 3;
  c.n_embd = 7168;
  c.n_ff = 18432;
  c.n_head = 128;
  c.q_lora_rank = 1536;
  c.kv_lora_rank = 512;
  c.qk_nope = 128;
  c.qk_rope = 64;
  c.v_head = 128;
  c.n_expert = 256;
  c.n_expert_used = 8;
  c.n_expert_shared = 1;
  c.n_ff_exp = 2048;
  c.n_group = 8;
  c.n_group_used = 4;
  c.gating = GatingFunc::kSigmoid;
  c.expert_weights_norm = true;
  c.expert_weights_scale = 2.5f;
  c.context_length = 163840;
  c.rope_scaling_type = "yarn";
  c.rope_scaling_factor = 40.0f;
  c.rope_orig_context = 4096;
  c.yarn_log_multiplier = 0.1f;  // 0.1 * mscale_all_dim (1), as converters write it
  return c;
}

// The Engram-27B-like host (docs/MODEL.md §10.2): the backbone with 4 mHC streams and
// Engram tables at two layers, addressed as V4.1 does (orders 2..max_ngram).
Deepseek2Config WithEngram(Deepseek2Config c, std::vector<uint32_t> layers, uint32_t max_ngram,
                           uint32_t heads, uint64_t vocab_base) {
  c.arch = engine::kArchDeepseek2Engram;
  c.hc_mult = 4;
  engine::EngramConfig& eg = c.engram;
  eg.layer_ids = std::move(layers);
  eg.max_ngram = max_ngram;
  eg.n_heads = heads;
  eg.head_dim = 256;
  eg.encoding = engine::EngramEncoding::kE4m3Row264;
  eg.conv_dilation = max_ngram - 1;
  eg.primes = engine::EngramPrimes(vocab_base, eg.n_layers(), max_ngram, heads);
  eg.rows.assign(eg.n_layers(), 0);
  for (uint32_t l = 0; l < eg.n_layers(); ++l) {
    for (uint32_t col = 0; col < eg.cols(); ++col) eg.rows[l] += eg.prime(l, col);
  }
  return c;
}

Deepseek2Config EngramTinyConfig() {
  return WithEngram(TinyConfig(), {1, 2}, 3, 2, 2003);
}

// V2-Lite's shapes cut to 4 layers (a backbone of about 1.3 GB in Q4_K) with V4.1's
// addressing (24 rows of 256 values per token per layer) over two tables of 8+ GB.
Deepseek2Config EngramBigConfig() {
  Deepseek2Config c = V2LiteConfig();
  c.n_layer = 4;
  return WithEngram(c, {1, 3}, 4, 8, 1300000);
}

// Flash's compress_ratios pattern (docs/GGUF.md §3.1): two window-only layers, then CSA on
// even and HCA on odd layers.
std::vector<uint32_t> FlashRatios(uint32_t n_layer) {
  std::vector<uint32_t> r;
  for (uint32_t il = 0; il < n_layer; ++il) {
    r.push_back(il < 2 ? 0 : il % 2 == 0 ? engine::kCsaRatio : engine::kHcaRatio);
  }
  return r;
}

// Sets the per-layer V4 arrays for `n_layer` layers.
void SizeV4Layers(Deepseek2Config& c, uint32_t n_layer) {
  engine::V4Config& v = c.v4;
  c.n_layer = n_layer;
  if (v.compress_ratios.size() != n_layer) {
    std::vector<uint32_t> r = FlashRatios(n_layer);
    // Keep the preset's own pattern where it has one.
    for (uint32_t il = 0; il < std::min<size_t>(n_layer, v.compress_ratios.size()); ++il)
      r[il] = v.compress_ratios[il];
    v.compress_ratios = r;
  }
  v.clamp_exp.assign(n_layer, 10.0f);
  v.clamp_shexp.assign(n_layer, 10.0f);
  v.hash_layers = std::min(v.hash_layers, n_layer);
}

// DeepSeek-V4-Flash's shapes (docs/MODEL.md §11) with `n_layer` layers in its pattern.
Deepseek2Config V4FlashConfig(uint32_t n_layer) {
  Deepseek2Config c;
  c.arch = engine::kArchDeepseek4;
  c.n_embd = 4096;
  c.n_head = 64;
  c.q_lora_rank = 1024;
  c.qk_rope = 64;
  c.qk_nope = 448;
  c.v_head = 512;
  c.n_expert = 256;
  c.n_expert_used = 6;
  c.n_expert_shared = 1;
  c.n_ff_exp = 2048;
  c.gating = GatingFunc::kSqrtSoftplus;
  c.expert_weights_norm = true;
  c.expert_weights_scale = 1.5f;
  c.context_length = 1048576;
  c.rope_freq_base = 10000.0f;
  c.rope_scaling_factor = 16.0f;
  c.rope_orig_context = 65536;
  c.hc_mult = 4;
  engine::V4Config& v = c.v4;
  v.head_dim = 512;
  v.sliding_window = 128;
  v.compress_rope_base = 160000.0f;
  v.o_groups = 8;
  v.o_lora_rank = 1024;
  v.index_heads = 64;
  v.index_dim = 128;
  v.index_topk = 512;
  v.hash_layers = 3;
  SizeV4Layers(c, n_layer);
  return c;
}

// V4 at test size: every layer type (window-only, CSA, HCA), hash and learned routing,
// a short window and a small indexer top-k so that short prompts exercise all of them.
Deepseek2Config V4TinyConfig() {
  Deepseek2Config c = V4FlashConfig(4);
  c.n_embd = 256;
  c.n_head = 4;
  c.q_lora_rank = 128;
  c.qk_rope = 32;
  c.qk_nope = 96;
  c.v_head = 128;
  c.n_expert = 16;
  c.n_expert_used = 4;
  c.n_ff_exp = 128;
  c.context_length = 2048;
  c.rope_scaling_factor = 4.0f;
  c.rope_orig_context = 256;
  engine::V4Config& v = c.v4;
  v.head_dim = 128;
  v.sliding_window = 32;
  v.compress_ratios = {0, engine::kCsaRatio, engine::kHcaRatio, engine::kCsaRatio};
  v.o_groups = 2;
  v.o_lora_rank = 64;
  v.index_heads = 4;
  v.index_dim = 64;
  v.index_topk = 8;
  v.hash_layers = 2;
  return c;
}

bool IsKQuant(GgmlType t) {
  return t == GgmlType::kQ2_K || t == GgmlType::kQ3_K || t == GgmlType::kQ4_K ||
         t == GgmlType::kQ5_K || t == GgmlType::kQ6_K;
}

// llama_ftype for general.file_type ("mostly <type>"), as llama-quantize writes it.
uint32_t FileTypeFor(GgmlType t) {
  switch (t) {
    case GgmlType::kF32:
      return 0;
    case GgmlType::kF16:
      return 1;
    case GgmlType::kQ4_0:
      return 2;
    case GgmlType::kQ8_0:
      return 7;
    case GgmlType::kQ5_0:
      return 8;
    case GgmlType::kQ4_K:
      return 14;  // Q4_K_S: every large tensor Q4_K
    case GgmlType::kQ4_1:
      return 3;
    case GgmlType::kQ5_1:
      return 9;
    case GgmlType::kQ2_K:
      return 10;
    case GgmlType::kQ3_K:
      return 11;  // Q3_K_S
    case GgmlType::kQ5_K:
      return 16;  // Q5_K_S
    case GgmlType::kQ6_K:
      return 18;
    case GgmlType::kIQ2_XXS:
      return 19;
    case GgmlType::kIQ2_XS:
      return 20;
    case GgmlType::kIQ3_XXS:
      return 23;
    case GgmlType::kIQ1_S:
      return 24;
    case GgmlType::kIQ4_NL:
      return 25;
    case GgmlType::kIQ3_S:
      return 26;
    case GgmlType::kIQ2_S:
      return 28;
    case GgmlType::kIQ4_XS:
      return 30;
    case GgmlType::kIQ1_M:
      return 31;
    case GgmlType::kBF16:
      return 32;
    case GgmlType::kMXFP4:
      return 38;  // MOSTLY_MXFP4_MOE: routed experts MXFP4, the rest Q8_0
    default:
      return 0;
  }
}

Result<engine::GgufVocab> LoadVocab(const MakeModelOptions& o) {
  std::string path = o.tokenizer;
  const bool tiny = o.preset == "tiny" || o.preset == "engram-tiny" || o.preset == "v4-tiny";
  if (path.empty()) path = tiny ? "none" : DefaultTokenizerPath();
  if (path.empty() || path == "none") {
    if (o.tokenizer.empty() && !tiny) {
      Log(LogModule::kTools)
          .warn(
              "DeepSeek-V3 tokenizer not found (scripts/setup.sh caches it); using the fallback "
              "byte vocabulary");
    }
    return engine::FallbackByteVocab();
  }
  return engine::VocabFromHfTokenizer(path, kDeepseekV3VocabRows);
}

// Streams one tensor: rows are generated and quantised in parallel, a chunk at a time,
// and written in order, so memory stays at a few chunks whatever the tensor size.
class TensorProducer {
 public:
  TensorProducer(TensorSpec spec, GgmlType type, const Deepseek2Config& config, uint64_t seed,
                 unsigned threads, std::vector<float> explicit_values)
      : spec_(std::move(spec)),
        type_(type),
        init_(InitFor(spec_, config)),
        seed_(seed),
        threads_(threads),
        explicit_values_(std::move(explicit_values)) {}

  Status operator()(storage::ByteSink& sink) const {
    const uint64_t ne0 = spec_.ne[0];
    uint64_t rows = 1;
    for (size_t d = 1; d < spec_.ne.size(); ++d) rows *= spec_.ne[d];
    const uint64_t row_bytes = *storage::RowBytes(type_, ne0);
    const uint64_t rows_per_chunk = std::max<uint64_t>(1, (8u << 20) / row_bytes);
    std::vector<uint8_t> chunk(rows_per_chunk * row_bytes);
    for (uint64_t first = 0; first < rows; first += rows_per_chunk) {
      const uint64_t count = std::min(rows_per_chunk, rows - first);
      auto work = [&](unsigned worker) {
        std::vector<float> values(ne0);
        for (uint64_t r = worker; r < count; r += threads_) {
          if (!explicit_values_.empty()) {
            std::copy_n(explicit_values_.begin() + static_cast<int64_t>((first + r) * ne0), ne0,
                        values.begin());
          } else {
            GenerateRow(spec_, init_, seed_, first + r, values.data());
          }
          engine::QuantizeRow(type_, values.data(), static_cast<int64_t>(ne0),
                              chunk.data() + r * row_bytes);
        }
      };
      if (threads_ <= 1 || count < 2) {
        work(0);
      } else {
        std::vector<std::thread> pool;
        for (unsigned t = 1; t < threads_; ++t) pool.emplace_back(work, t);
        work(0);
        for (auto& th : pool) th.join();
      }
      STRATA_RETURN_IF_ERROR(sink.Write(chunk.data(), count * row_bytes));
    }
    return Status::Ok();
  }

 private:
  TensorSpec spec_;
  GgmlType type_;
  WeightInit init_;
  uint64_t seed_;
  unsigned threads_;
  std::vector<float> explicit_values_;  // e.g. calibrated router biases
};

// Streams an Engram table in the E4M3 + E8M0 row encoding: random codes with the
// exponent's top bit clear (|v| < 2, never NaN) and scales near 1. Generated in
// parallel a chunk at a time, so the table is written at close to disk speed.
class E4m3TableProducer {
 public:
  E4m3TableProducer(std::string name, uint64_t rows, uint64_t seed, unsigned threads)
      : name_(std::move(name)), rows_(rows), seed_(seed), threads_(std::max(1u, threads)) {}

  Status operator()(storage::ByteSink& sink) const {
    constexpr uint64_t kRowBytes = 264;
    constexpr uint64_t kRowsPerChunk = (16u << 20) / kRowBytes;
    std::vector<uint8_t> chunk(kRowsPerChunk * kRowBytes);
    const uint64_t stream = HashName(name_, seed_);
    for (uint64_t first = 0; first < rows_; first += kRowsPerChunk) {
      const uint64_t count = std::min(kRowsPerChunk, rows_ - first);
      auto work = [&](unsigned worker) {
        const uint64_t begin = count * worker / threads_, end = count * (worker + 1) / threads_;
        Rng rng(stream ^ ((first + begin) * 0x9E3779B97F4A7C15ull));
        for (uint64_t r = begin; r < end; ++r) {
          uint8_t* row = chunk.data() + r * kRowBytes;
          for (int w = 0; w < 32; ++w) {
            const uint64_t bits = rng.Next() & 0xBFBFBFBFBFBFBFBFull;
            std::memcpy(row + w * 8, &bits, 8);
          }
          const uint64_t s = rng.Next();
          for (int g = 0; g < 8; ++g) row[256 + g] = static_cast<uint8_t>(125 + (s >> (8 * g)) % 4);
        }
      };
      std::vector<std::thread> pool;
      for (unsigned t = 1; t < threads_; ++t) pool.emplace_back(work, t);
      work(0);
      for (auto& th : pool) th.join();
      STRATA_RETURN_IF_ERROR(sink.Write(chunk.data(), count * kRowBytes));
    }
    return Status::Ok();
  }

 private:
  std::string name_;
  uint64_t rows_;
  uint64_t seed_;
  unsigned threads_;
};

// ffn_gate_tid2eid: per token, `top_k` distinct experts drawn from a seeded stream
// (V4 freezes a random assignment at training time, so random is the real shape).
class HashTableProducer {
 public:
  HashTableProducer(std::string name, uint32_t top_k, uint32_t n_vocab, uint32_t n_expert,
                    uint64_t seed)
      : name_(std::move(name)), top_k_(top_k), n_vocab_(n_vocab), n_expert_(n_expert), seed_(seed) {}

  Status operator()(storage::ByteSink& sink) const {
    Rng rng(HashName(name_, seed_));
    std::vector<int32_t> ids(static_cast<size_t>(n_vocab_) * top_k_);
    for (uint32_t t = 0; t < n_vocab_; ++t) {
      int32_t* row = &ids[static_cast<size_t>(t) * top_k_];
      for (uint32_t k = 0; k < top_k_; ++k) {
        int32_t e;
        do {
          e = static_cast<int32_t>(rng.Next() % n_expert_);
        } while (std::find(row, row + k, e) != row + k);
        row[k] = e;
      }
    }
    return sink.Write(reinterpret_cast<const uint8_t*>(ids.data()), ids.size() * sizeof(int32_t));
  }

 private:
  std::string name_;
  uint32_t top_k_, n_vocab_, n_expert_;
  uint64_t seed_;
};

}  // namespace

std::vector<std::string> PresetNames() {
  return {"tiny",       "small",   "v2lite",       "v3-slice",
          "engram-tiny", "engram-big", "v4-tiny", "v4flash-slice"};
}

GgmlType PresetDefaultType(const std::string& preset) {
  if (preset == "v4flash-slice") return GgmlType::kMXFP4;  // as V4 ships its experts
  return preset == "tiny" || preset == "engram-tiny" || preset == "v4-tiny" ? GgmlType::kQ8_0
                                                                            : GgmlType::kQ4_K;
}

Result<Deepseek2Config> PresetConfig(const MakeModelOptions& o) {
  Deepseek2Config c;
  if (o.preset == "tiny") {
    c = TinyConfig();
  } else if (o.preset == "small") {
    c = SmallConfig();
  } else if (o.preset == "v2lite") {
    c = V2LiteConfig();
  } else if (o.preset == "v3-slice") {
    c = V3SliceConfig();
  } else if (o.preset == "engram-tiny") {
    c = EngramTinyConfig();
  } else if (o.preset == "engram-big") {
    c = EngramBigConfig();
  } else if (o.preset == "v4-tiny") {
    c = V4TinyConfig();
  } else if (o.preset == "v4flash-slice") {
    c = V4FlashConfig(4);
  } else {
    return Status::InvalidArgument(
        "--preset: unknown preset '" + o.preset +
        "' (tiny, small, v2lite, v3-slice, engram-tiny, engram-big, v4-tiny, v4flash-slice)");
  }
  engine::EngramConfig& eg = c.engram;
  if (!eg.enabled() && (o.engram_rows || !o.engram_encoding.empty() || !o.engram_module.empty())) {
    return Status::InvalidArgument("--engram-*: preset '" + o.preset + "' has no Engram tables");
  }
  if (!o.engram_encoding.empty()) {
    auto e = engine::ParseEngramEncoding(o.engram_encoding);
    if (!e.ok()) return Status::InvalidArgument("--engram-encoding: " + e.status().message());
    eg.encoding = *e;
  }
  if (o.engram_module == "demo") {
    eg.module = engine::EngramModule::kDemo;
  } else if (!o.engram_module.empty() && o.engram_module != "v41") {
    return Status::InvalidArgument("--engram-module: '" + o.engram_module +
                                   "' is not v41 or demo");
  }
  if (o.engram_rows) {
    // Rows per table = the sum of cols() primes just above the base.
    if (o.engram_rows < uint64_t{eg.cols()} * 3 || o.engram_rows / eg.cols() > (1ull << 31)) {
      return Status::InvalidArgument("--engram-rows " + std::to_string(o.engram_rows) +
                                     " must be in " + std::to_string(eg.cols() * 3) + ".." +
                                     std::to_string(uint64_t{eg.cols()} << 31));
    }
    c = WithEngram(c, eg.layer_ids, eg.max_ngram, eg.n_heads, o.engram_rows / eg.cols());
  }
  if (o.layers && eg.enabled()) {
    return Status::InvalidArgument("--layers: the Engram presets fix their layers");
  }
  if (o.layers && c.is_v4()) SizeV4Layers(c, *o.layers);
  if (o.layers) c.n_layer = *o.layers;
  // A slice keeps its dense layers as long as one MoE layer remains after them.
  if (o.layers && c.n_leading_dense >= c.n_layer && !c.is_v4())
    c.n_leading_dense = c.n_layer > 1 ? std::min(c.n_leading_dense, c.n_layer - 1) : 0;
  if (o.hidden && c.is_v4()) {
    return Status::InvalidArgument("--hidden: the V4 presets fix their widths");
  }
  if (o.experts) c.n_expert = *o.experts;
  if (o.hidden) c.n_embd = *o.hidden;
  c.n_vocab = 1;  // set from the vocabulary later; validated here for the rest
  Status s = c.Validate();
  if (!s.ok()) return Status::InvalidArgument("make-model: " + s.message());
  return c;
}

GgmlType StorageTypeFor(GgmlType type, int role_int, uint64_t ne0) {
  const auto role = static_cast<TensorRole>(role_int);
  if (role == TensorRole::kNorm || role == TensorRole::kRouter ||
      role == TensorRole::kRouterBias || role == TensorRole::kHyperParam ||
      role == TensorRole::kBias || role == TensorRole::kConv || role == TensorRole::kSinks ||
      role == TensorRole::kApe) {
    return GgmlType::kF32;
  }
  if (role == TensorRole::kHashTable) return GgmlType::kI32;
  // As ds4 ships them: mHC projections, V4 compressors and indexer.
  if (role == TensorRole::kHyperFn || role == TensorRole::kSideMatrix) return GgmlType::kF16;
  // MXFP4 is how V4 ships its routed experts; its converters map the rest to Q8_0.
  if (type == GgmlType::kMXFP4 && role != TensorRole::kExpertStack) {
    return ne0 % 32 == 0 ? GgmlType::kQ8_0 : GgmlType::kF16;
  }
  if (storage::RowBytes(type, ne0)) return type;
  // The 256-value IQ types fall back to IQ4_NL, as llama-quantize does.
  if (storage::TypeInfo(type).block_elems == 256 && type != GgmlType::kQ8_K && !IsKQuant(type) &&
      ne0 % 32 == 0) {
    return GgmlType::kIQ4_NL;
  }
  if (IsKQuant(type) && ne0 % 32 == 0) {
    if (type == GgmlType::kQ4_K) return GgmlType::kQ5_0;
    if (type == GgmlType::kQ5_K) return GgmlType::kQ5_1;
    if (type == GgmlType::kQ2_K || type == GgmlType::kQ3_K) return GgmlType::kQ4_0;
    return GgmlType::kQ8_0;
  }
  return ne0 % 32 == 0 ? GgmlType::kQ8_0 : GgmlType::kF16;
}

std::string DefaultTokenizerPath() {
  const std::string dir = CacheDir();
  if (dir.empty()) return "";
  const std::string path = dir + "/deepseek-v3/tokenizer.json";
  return std::filesystem::exists(path) ? path : "";
}

Result<MakeModelReport> MakeModel(const MakeModelOptions& o) {
  if (o.output.empty()) return Status::InvalidArgument("make-model: -o/--output is required");
  STRATA_ASSIGN_OR_RETURN(Deepseek2Config config, PresetConfig(o));
  const GgmlType type = o.type.value_or(PresetDefaultType(o.preset));
  if (!o.recipe.empty() && !IsRecipe(o.recipe)) {
    std::string names;
    for (const std::string& r : RecipeNames()) names += (names.empty() ? "" : ", ") + r;
    return Status::InvalidArgument("--recipe: unknown recipe '" + o.recipe + "' (" + names + ")");
  }
  if (!o.recipe.empty() && o.type) {
    return Status::InvalidArgument("--recipe and --type: a recipe sets every tensor's type; give one of them");
  }
  if (!engine::CanQuantize(type)) {
    return Status::InvalidArgument(
        "--type: make-model cannot write " + std::string(storage::TypeName(type)) +
        " (F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, MXFP4, IQ1_S, "
        "IQ1_M, IQ2_XXS, IQ2_XS, IQ2_S, IQ3_XXS, IQ3_S, IQ4_NL, IQ4_XS)");
  }
  if (o.routing_skew < 0 || o.routing_skew > 8) {
    return Status::InvalidArgument("--routing-skew must be in [0, 8]");
  }
  STRATA_ASSIGN_OR_RETURN(engine::GgufVocab vocab, LoadVocab(o));
  config.n_vocab = static_cast<uint32_t>(vocab.tokens.size());
  if (config.engram.enabled()) {
    engine::EngramConfig& eg = config.engram;
    eg.token_map = engine::SyntheticTokenMap(vocab.tokens, &eg.compressed_vocab);
    eg.pad_id = eg.token_map.size() > 2 ? eg.token_map[2] : 0;  // raw token 2, as V4.1
    eg.multipliers =
        engine::SyntheticEngramMultipliers(o.seed, eg.layer_ids, eg.max_ngram, eg.compressed_vocab);
    if (Status s = eg.Validate(config.n_vocab, config.n_layer); !s.ok()) {
      return Status::InvalidArgument("make-model: " + s.message());
    }
  }

  const unsigned threads =
      o.threads ? o.threads : std::max(1u, std::thread::hardware_concurrency());
  const bool router_bias = config.gating == GatingFunc::kSigmoid ||
                           config.gating == GatingFunc::kSqrtSoftplus || o.routing_skew > 0;

  storage::GgufWriter writer;
  using storage::GgufValue;
  writer.AddMetadata("general.architecture", GgufValue::String(config.arch));
  writer.AddMetadata("general.name", GgufValue::String("strata synthetic " + o.preset));
  writer.AddMetadata("general.file_type",
                     GgufValue::U32(o.recipe.empty() ? FileTypeFor(type) : RecipeFileType(o.recipe)));
  writer.AddMetadata("general.quantization_version", GgufValue::U32(2));
  config.WriteMetadata(writer);
  vocab.WriteMetadata(writer);
  // Provenance: this file's weights are random; say so inside the file.
  writer.AddMetadata("strata.synthetic.preset", GgufValue::String(o.preset));
  writer.AddMetadata("strata.synthetic.seed", GgufValue::U64(o.seed));
  writer.AddMetadata("strata.synthetic.routing_skew",
                     GgufValue::F32(static_cast<float>(o.routing_skew)));
  writer.AddMetadata(
      "strata.synthetic.tokenizer",
      GgufValue::String(vocab.source.starts_with("tokenizer.json") ? "deepseek-v3 tokenizer.json"
                                                                   : vocab.source));

  for (TensorSpec& spec : engine::Deepseek2TensorPlan(config, router_bias)) {
    if (spec.role == TensorRole::kEngramTable) {
      const GgmlType t = config.engram.table_type();
      if (config.engram.encoding == engine::EngramEncoding::kE4m3Row264) {
        STRATA_RETURN_IF_ERROR(writer.AddTensor(
            spec.name, t, spec.ne, E4m3TableProducer(spec.name, spec.ne[1], o.seed, threads)));
      } else {
        const std::vector<uint64_t> ne = spec.ne;
        const std::string name = spec.name;
        STRATA_RETURN_IF_ERROR(writer.AddTensor(
            name, t, ne, TensorProducer(std::move(spec), t, config, o.seed, threads, {})));
      }
      continue;
    }
    const GgmlType wanted = o.recipe.empty() ? type : RecipeType(o.recipe, spec, config);
    const GgmlType t = StorageTypeFor(wanted, static_cast<int>(spec.role), spec.ne[0]);
    if (spec.role == TensorRole::kHashTable) {
      STRATA_RETURN_IF_ERROR(writer.AddTensor(
          spec.name, t, spec.ne,
          HashTableProducer(spec.name, config.n_expert_used, config.n_vocab, config.n_expert,
                            o.seed)));
      continue;
    }
    std::vector<float> explicit_values;
    if (spec.role == TensorRole::kRouterBias) {
      const std::string router_name = "blk." + std::to_string(spec.layer) + ".ffn_gate_inp.weight";
      const TensorSpec router{
          router_name, {config.n_embd, config.n_expert}, TensorRole::kRouter, spec.layer};
      explicit_values = CalibrateRouterBias(config, router, o.seed, o.routing_skew);
    }
    const std::vector<uint64_t> ne = spec.ne;
    const std::string name = spec.name;
    STRATA_RETURN_IF_ERROR(writer.AddTensor(
        name, t, ne,
        TensorProducer(std::move(spec), t, config, o.seed, threads, std::move(explicit_values))));
  }

  ProgressBar progress("make-model " + o.preset, writer.data_bytes(), o.progress);
  MakeModelReport report;
  if (o.split_max_size > 0) {
    STRATA_ASSIGN_OR_RETURN(report.files, writer.WriteSplitTo(o.output, o.split_max_size, &progress));
  } else {
    STRATA_RETURN_IF_ERROR(writer.WriteTo(o.output, &progress));
    report.files = {o.output};
  }
  report.seconds = progress.Finish();
  for (const std::string& f : report.files) report.file_bytes += std::filesystem::file_size(f);
  report.tokenizer_source = vocab.source;
  return report;
}

}  // namespace strata::tools

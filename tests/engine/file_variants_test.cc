// Real files come in variants make-model does not write by default: old MLA files that
// carry attn_kv_b instead of attn_k_b/attn_v_b, files whose block_count includes MTP
// layers, and deepseek4 files as other producers write them (i32 compress ratios, a
// scalar SwiGLU clamp, a 3-D attn_output_a, MTP layers declared but not shipped). Each
// variant is made here by rewriting a tiny model, and must give the logits of the
// original; bad deepseek4 metadata and tables must give one line naming the key or
// tensor.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <functional>

#include "engine/session.h"
#include "engine/quant/quantize.h"
#include "storage/gguf.h"
#include "storage/gguf_writer.h"
#include "tools/inspect.h"
#include "tools/make_model.h"

namespace strata::engine {
namespace {

using storage::GgmlType;
using storage::GgufValue;

std::string TempPath(const std::string& name) {
  return (std::filesystem::temp_directory_path() /
          ("strata-variant-" + std::to_string(::getpid()) + "-" + name + ".gguf"))
      .string();
}

std::string MakeTiny(GgmlType type, const std::string& preset = "tiny") {
  const std::string path =
      TempPath(preset + "-" + std::string(storage::TypeName(type)));
  tools::MakeModelOptions o;
  o.preset = preset;
  o.output = path;
  o.type = type;
  o.progress = false;
  EXPECT_TRUE(tools::MakeModel(o).ok());
  return path;
}

std::vector<float> Logits(const std::string& path, std::vector<float>* second = nullptr) {
  auto file = ModelFile::Open(path);
  EXPECT_TRUE(file.ok()) << file.status().ToString();
  auto model = DeepseekModel::Load(std::move(*file));
  EXPECT_TRUE(model.ok()) << model.status().ToString();
  if (!model.ok()) return {};
  Session session(**model, 64, GgmlType::kF32, {.threads = 2});
  std::vector<float> logits;
  EXPECT_TRUE(session.Eval(std::vector<int32_t>{256, 10, 20, 30, 40}, &logits).ok());
  if (second) {
    EXPECT_TRUE(session.Eval(std::vector<int32_t>{50}, second).ok());
  }
  return logits;
}

// Copies `in` to `out`, letting `edit` change metadata and add or drop tensors.
struct Rewrite {
  std::function<bool(const std::string& key, GgufValue* value)> metadata;  // false: drop
  std::function<bool(const storage::TensorInfo& t)> keep_tensor;
  std::function<void(storage::GgufWriter& w)> extra;
};

void RewriteFile(const std::string& in, const std::string& out, const Rewrite& r) {
  auto file = ModelFile::Open(in);
  ASSERT_TRUE(file.ok());
  const ModelFile& f = **file;
  storage::GgufWriter w;
  for (auto [key, value] : f.gguf().metadata()) {
    if (!r.metadata || r.metadata(key, &value)) w.AddMetadata(key, value);
  }
  for (const auto& t : f.gguf().tensors()) {
    if (r.keep_tensor && !r.keep_tensor(t)) continue;
    const uint8_t* data = f.Data(t.name);
    const uint64_t bytes = t.bytes;
    ASSERT_TRUE(
        w.AddTensor(t.name, t.type, std::vector<uint64_t>(t.ne.begin(), t.ne.begin() + t.n_dims),
                    [data, bytes](storage::ByteSink& sink) { return sink.Write(data, bytes); })
            .ok());
  }
  if (r.extra) r.extra(w);
  ASSERT_TRUE(w.WriteTo(out).ok());
}

TEST(FileVariants, MtpLayersInBlockCountAreSkipped) {
  const std::string tiny = MakeTiny(GgmlType::kQ8_0), mtp = TempPath("mtp");
  std::vector<uint8_t> eh(256 * 512 * 4, 0);
  Rewrite r;
  r.metadata = [](const std::string& key, GgufValue* v) {
    if (key == "deepseek2.block_count") *v = GgufValue::U32(4);
    return true;
  };
  r.extra = [&](storage::GgufWriter& w) {
    w.AddMetadata("deepseek2.nextn_predict_layers", GgufValue::U32(1));
    // An MTP tensor the main pass must ignore.
    ASSERT_TRUE(w.AddTensor("blk.3.nextn.eh_proj.weight", GgmlType::kF32, {512, 256},
                            [&](storage::ByteSink& s) { return s.Write(eh.data(), eh.size()); })
                    .ok());
  };
  RewriteFile(tiny, mtp, r);
  EXPECT_EQ(Logits(mtp), Logits(tiny));
  std::filesystem::remove(tiny);
  std::filesystem::remove(mtp);
}

// Rewrites `split` (attn_k_b/attn_v_b) as an old file with attn_kv_b [Rkv, H*(dn+dv)]
// (the inverse of the converter's split) stored as `type`.
void WriteLegacy(const std::string& split, const std::string& legacy, GgmlType type) {
  auto file = ModelFile::Open(split);
  ASSERT_TRUE(file.ok());
  auto config = Deepseek2Config::FromGguf((*file)->gguf());
  ASSERT_TRUE(config.ok());
  const Deepseek2Config c = *config;
  const uint64_t H = c.n_head, dn = c.qk_nope, dv = c.v_head, Rkv = c.kv_lora_rank;
  const uint64_t row_bytes = *storage::RowBytes(type, Rkv);
  std::vector<std::vector<uint8_t>> kv_b(c.n_layer, std::vector<uint8_t>(H * (dn + dv) * row_bytes));
  std::vector<float> row(Rkv);
  for (uint32_t il = 0; il < c.n_layer; ++il) {
    const std::string p = "blk." + std::to_string(il) + ".";
    const auto* kb = reinterpret_cast<const float*>((*file)->Data(p + "attn_k_b.weight"));
    const auto* vb = reinterpret_cast<const float*>((*file)->Data(p + "attn_v_b.weight"));
    for (uint64_t h = 0; h < H; ++h) {
      for (uint64_t j = 0; j < dn + dv; ++j) {
        for (uint64_t r = 0; r < Rkv; ++r) {
          row[r] = j < dn ? kb[(h * Rkv + r) * dn + j] : vb[(h * dv + j - dn) * Rkv + r];
        }
        QuantizeRow(type, row.data(), static_cast<int64_t>(Rkv),
                    &kv_b[il][(h * (dn + dv) + j) * row_bytes]);
      }
    }
  }
  Rewrite r;
  // Old files also carry the pre-split metadata: per-head K/V sizes, no *_mla keys.
  r.metadata = [&](const std::string& key, GgufValue* v) {
    if (key == "deepseek2.attention.key_length_mla" ||
        key == "deepseek2.attention.value_length_mla") {
      return false;
    }
    if (key == "deepseek2.attention.key_length")
      *v = GgufValue::U32(static_cast<uint32_t>(dn + c.qk_rope));
    if (key == "deepseek2.attention.value_length") *v = GgufValue::U32(static_cast<uint32_t>(dv));
    if (key == "deepseek2.attention.head_count_kv") *v = GgufValue::U32(static_cast<uint32_t>(H));
    return true;
  };
  r.keep_tensor = [](const storage::TensorInfo& t) {
    return !t.name.ends_with("attn_k_b.weight") && !t.name.ends_with("attn_v_b.weight");
  };
  r.extra = [&](storage::GgufWriter& w) {
    for (uint32_t il = 0; il < c.n_layer; ++il) {
      const auto* data = kv_b[il].data();
      const size_t bytes = kv_b[il].size();
      ASSERT_TRUE(w.AddTensor("blk." + std::to_string(il) + ".attn_kv_b.weight", type,
                              {Rkv, H * (dn + dv)},
                              [data, bytes](storage::ByteSink& s) { return s.Write(data, bytes); })
                      .ok());
    }
  };
  RewriteFile(split, legacy, r);
  auto gguf = storage::ReadGgufFile(legacy);
  ASSERT_TRUE(gguf.ok());
  const tools::Verdict verdict = tools::CheckRunnable(*gguf);
  EXPECT_TRUE(verdict.runnable) << verdict.text;
}

TEST(FileVariants, LegacyAttnKvBMatchesTheSplitForm) {
  // In F32 nothing is lost: the split rebuilds the same weights bit for bit.
  const std::string tiny = MakeTiny(GgmlType::kF32), legacy = TempPath("legacy");
  WriteLegacy(tiny, legacy, GgmlType::kF32);
  std::vector<float> a2, b2;
  const auto a = Logits(tiny, &a2), b = Logits(legacy, &b2);
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    ASSERT_EQ(a[i], b[i]) << i;
    ASSERT_EQ(a2[i], b2[i]) << i;
  }
  std::filesystem::remove(tiny);
  std::filesystem::remove(legacy);
}

// A quantized attn_kv_b costs what the split tensors of a converted file cost: k_b in
// Q8_0 (its rows are too short for the K-quants) holding the transposed key rows to
// within Q8_0's rounding, v_b the original's own value rows byte for byte, the original
// released; the budget counts the split's peak.
TEST(FileVariants, QuantizedLegacyAttnKvBStaysQuantizedAndWithinTheBudget) {
  const std::string tiny = MakeTiny(GgmlType::kF32), legacy = TempPath("legacy-q8");
  WriteLegacy(tiny, legacy, GgmlType::kQ8_0);
  auto file = ModelFile::Open(legacy);
  ASSERT_TRUE(file.ok());
  const storage::TensorInfo* kv_b_info = (*file)->gguf().FindTensor("blk.0.attn_kv_b.weight");
  const uint64_t kv_b_bytes = kv_b_info->bytes;
  // A copy of layer 0's original rows, before the model releases them.
  const uint8_t* kv_b_data = (*file)->Data("blk.0.attn_kv_b.weight");
  const std::vector<uint8_t> original(kv_b_data, kv_b_data + kv_b_bytes);
  const uint64_t loaded = (*file)->resident_bytes();
  auto model = DeepseekModel::Load(std::move(*file));
  ASSERT_TRUE(model.ok()) << model.status().ToString();
  const Deepseek2Config& c = (*model)->config();
  const DeepseekLayer& L = (*model)->layer(0);
  ASSERT_EQ(L.k_b.type, GgmlType::kQ8_0);
  ASSERT_EQ(L.v_b.type, GgmlType::kQ8_0);
  const uint64_t H = c.n_head, dn = c.qk_nope, dv = c.v_head, Rkv = c.kv_lora_rank;
  const uint64_t row = L.v_b.row_bytes;
  std::vector<float> kv_row(Rkv), k_row(dn);
  for (uint64_t h = 0; h < H; ++h) {
    for (uint64_t j = 0; j < dv; ++j) {
      ASSERT_EQ(0, std::memcmp(L.v_b.row(static_cast<int64_t>(h * dv + j)),
                               &original[(h * (dn + dv) + dn + j) * row], row))
          << "v_b row " << h * dv + j << " is the original's value row";
    }
    for (uint64_t d = 0; d < dn; ++d) {
      DequantizeRow(GgmlType::kQ8_0, &original[(h * (dn + dv) + d) * row],
                    static_cast<int64_t>(Rkv), kv_row.data());
      for (uint64_t r = 0; r < Rkv; ++r) {
        DequantizeRow(GgmlType::kQ8_0, L.k_b.row(static_cast<int64_t>(h * Rkv + r)),
                      static_cast<int64_t>(dn), k_row.data());
        float amax = 0;
        for (float v : k_row) amax = std::max(amax, std::abs(v));
        // One Q8_0 step of k_b's block is amax / 127: rounding is within half of it,
        // plus the step's own f16 rounding (2^-11 of it) over up to 127 steps.
        ASSERT_NEAR(k_row[d], kv_row[r], amax / 127 * 0.6f + 1e-6f) << h << " " << d << " " << r;
      }
    }
  }
  EXPECT_EQ((*model)->file().resident_bytes(), loaded - c.n_layer * kv_b_bytes)
      << "every original attn_kv_b is released once split";
  const uint64_t derived = DeepseekModel::DerivedBytes((*model)->file().gguf(), c);
  EXPECT_GE(derived, kv_b_bytes) << "one layer's split lives beside its original";
  EXPECT_LE(derived, 2 * kv_b_bytes) << "Q8_0 in, Q8_0 out: nothing grows";
  EXPECT_EQ(Logits(legacy).size(), c.n_vocab) << "and it runs";
  std::filesystem::remove(tiny);
  std::filesystem::remove(legacy);
}

TEST(FileVariants, Deepseek4AsOtherProducersWriteIt) {
  const std::string v4 = MakeTiny(GgmlType::kQ8_0, "v4-tiny"), variant = TempPath("v4-variant");
  auto file = ModelFile::Open(v4);
  ASSERT_TRUE(file.ok());
  auto config = Deepseek2Config::FromGguf((*file)->gguf());
  ASSERT_TRUE(config.ok());
  const Deepseek2Config c = *config;
  Rewrite r;
  r.metadata = [&](const std::string& key, GgufValue* v) {
    if (key == "deepseek4.attention.compress_ratios") {  // ds4 also accepts i32
      std::vector<int32_t> ratios(c.v4.compress_ratios.begin(), c.v4.compress_ratios.end());
      ratios.push_back(0);  // upstream arrays also cover the MTP layer
      *v = GgufValue::I32Array(ratios);
    }
    if (key == "deepseek4.swiglu_clamp_exp") *v = GgufValue::F32(10.0f);  // one for all
    if (key == "deepseek4.swiglu_clamp_shexp") return false;  // defaults to the routed one
    return true;
  };
  r.keep_tensor = [](const storage::TensorInfo& t) {
    return !t.name.ends_with("attn_output_a.weight");
  };
  r.extra = [&](storage::GgufWriter& w) {
    // An MTP layer declared but shipped elsewhere (ds4): docs/GGUF.md §3.4 treats it as
    // absent, so block_count stays the main layers.
    w.AddMetadata("deepseek4.nextn_predict_layers", GgufValue::U32(1));
    const uint64_t rows_in = uint64_t{c.n_head} * c.v4.head_dim / c.v4.o_groups;
    for (uint32_t il = 0; il < c.n_layer; ++il) {  // a fork's [H*D/G, Ro, G]: same bytes
      const std::string name = "blk." + std::to_string(il) + ".attn_output_a.weight";
      const storage::TensorInfo* t = (*file)->gguf().FindTensor(name);
      const uint8_t* data = (*file)->Data(name);
      const uint64_t bytes = t->bytes;
      ASSERT_TRUE(w.AddTensor(name, t->type, {rows_in, c.v4.o_lora_rank, c.v4.o_groups},
                              [data, bytes](storage::ByteSink& s) { return s.Write(data, bytes); })
                      .ok());
    }
  };
  RewriteFile(v4, variant, r);
  auto gguf = storage::ReadGgufFile(variant);
  ASSERT_TRUE(gguf.ok());
  const tools::Verdict verdict = tools::CheckRunnable(*gguf);
  EXPECT_TRUE(verdict.runnable) << verdict.text;
  EXPECT_EQ(Logits(variant), Logits(v4));
  std::filesystem::remove(variant);
  std::filesystem::remove(v4);
}

TEST(FileVariants, BadDeepseek4MetadataAndTablesNameTheKeyOrTensor) {
  const std::string v4 = MakeTiny(GgmlType::kQ8_0, "v4-tiny"), bad = TempPath("v4-bad");
  auto load_error = [&](const Rewrite& r) {
    RewriteFile(v4, bad, r);
    auto file = ModelFile::Open(bad);
    if (!file.ok()) return file.status().ToString();
    auto model = DeepseekModel::Load(std::move(*file));
    return model.ok() ? std::string("loaded") : model.status().ToString();
  };
  auto set = [](const std::string& which, GgufValue value) {
    Rewrite r;
    r.metadata = [which, value](const std::string& key, GgufValue* v) {
      if (key == which) *v = value;
      return true;
    };
    return r;
  };
  struct Case {
    Rewrite rewrite;
    std::string expect;
  };
  std::vector<Case> cases = {
      {set("deepseek4.attention.compress_ratios", GgufValue::U32Array({0, 4, 3, 4})),
       "compress_ratios' item 2 is not 0, 4 or 128"},
      {set("deepseek4.attention.compress_ratios", GgufValue::U32Array({0, 4})),
       "compress_ratios' is not an integer array of at least 4"},
      {set("deepseek4.attention.sliding_window", GgufValue::U32(1u << 30)),
       "sliding_window 1073741824 must be in 1..65536"},
      {set("deepseek4.attention.output_group_count", GgufValue::U32(3)),
       "output_group_count 3 must divide"},
      {set("deepseek4.expert_gating_func", GgufValue::U32(2)), "expert_gating_func 4"},
      {set("deepseek4.hash_layer_count", GgufValue::U32(9)), "hash_layer_count exceeds"},
  };
  // A hash table naming an expert the model does not have.
  Rewrite table;
  auto file = ModelFile::Open(v4);
  ASSERT_TRUE(file.ok());
  const storage::TensorInfo* t = (*file)->gguf().FindTensor("blk.0.ffn_gate_tid2eid.weight");
  ASSERT_NE(t, nullptr);
  std::vector<int32_t> ids(t->n_elements());
  std::memcpy(ids.data(), (*file)->Data(t->name), t->bytes);
  ids[5 * t->ne[0] + 1] = 99;
  table.keep_tensor = [](const storage::TensorInfo& x) {
    return x.name != "blk.0.ffn_gate_tid2eid.weight";
  };
  table.extra = [&](storage::GgufWriter& w) {
    ASSERT_TRUE(w.AddTensor("blk.0.ffn_gate_tid2eid.weight", GgmlType::kI32, {t->ne[0], t->ne[1]},
                            [&](storage::ByteSink& s) {
                              return s.Write(reinterpret_cast<const uint8_t*>(ids.data()),
                                             ids.size() * sizeof(int32_t));
                            })
                    .ok());
  };
  cases.push_back({table, "'blk.0.ffn_gate_tid2eid.weight' names expert 99 for token 5"});
  for (const Case& k : cases) {
    const std::string error = load_error(k.rewrite);
    EXPECT_NE(error.find(k.expect), std::string::npos) << error;
    EXPECT_EQ(error.find('\n'), std::string::npos) << error;
  }
  std::filesystem::remove(bad);
  std::filesystem::remove(v4);
}

}  // namespace
}  // namespace strata::engine

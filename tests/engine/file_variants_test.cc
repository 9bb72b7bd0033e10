// Real files come in variants make-model does not write by default: old MLA files that
// carry attn_kv_b instead of attn_k_b/attn_v_b, and files whose block_count includes
// MTP layers. Each variant is made here by rewriting the tiny model, and must give the
// logits of the original.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <functional>

#include "engine/deepseek2_model.h"
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

std::string MakeTiny(GgmlType type) {
  const std::string path = TempPath(std::string("tiny-") + std::string(storage::TypeName(type)));
  tools::MakeModelOptions o;
  o.preset = "tiny";
  o.output = path;
  o.type = type;
  o.progress = false;
  EXPECT_TRUE(tools::MakeModel(o).ok());
  return path;
}

std::vector<float> Logits(const std::string& path, std::vector<float>* second = nullptr) {
  auto file = ModelFile::Open(path);
  EXPECT_TRUE(file.ok()) << file.status().ToString();
  auto model = Deepseek2Model::Load(std::move(*file));
  EXPECT_TRUE(model.ok()) << model.status().ToString();
  if (!model.ok()) return {};
  Deepseek2Session session(**model, 64, GgmlType::kF32, {.threads = 2});
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

TEST(FileVariants, LegacyAttnKvBMatchesTheSplitForm) {
  // Rebuild attn_kv_b [Rkv, H*(dn+dv)] from attn_k_b [dn, Rkv, H] and attn_v_b
  // [Rkv, dv, H] (the inverse of the converter's split), in F32 so nothing is lost.
  const std::string tiny = MakeTiny(GgmlType::kF32), legacy = TempPath("legacy");
  auto file = ModelFile::Open(tiny);
  ASSERT_TRUE(file.ok());
  auto config = Deepseek2Config::FromGguf((*file)->gguf());
  ASSERT_TRUE(config.ok());
  const Deepseek2Config c = *config;
  const uint64_t H = c.n_head, dn = c.qk_nope, dv = c.v_head, Rkv = c.kv_lora_rank;
  std::vector<std::vector<float>> kv_b(c.n_layer, std::vector<float>(H * (dn + dv) * Rkv));
  for (uint32_t il = 0; il < c.n_layer; ++il) {
    const std::string p = "blk." + std::to_string(il) + ".";
    const auto* kb = reinterpret_cast<const float*>((*file)->Data(p + "attn_k_b.weight"));
    const auto* vb = reinterpret_cast<const float*>((*file)->Data(p + "attn_v_b.weight"));
    for (uint64_t h = 0; h < H; ++h) {
      for (uint64_t d = 0; d < dn; ++d) {
        for (uint64_t r = 0; r < Rkv; ++r)
          kv_b[il][(h * (dn + dv) + d) * Rkv + r] = kb[(h * Rkv + r) * dn + d];
      }
      for (uint64_t j = 0; j < dv; ++j) {
        for (uint64_t r = 0; r < Rkv; ++r)
          kv_b[il][(h * (dn + dv) + dn + j) * Rkv + r] = vb[(h * dv + j) * Rkv + r];
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
      const size_t bytes = kv_b[il].size() * sizeof(float);
      ASSERT_TRUE(w.AddTensor("blk." + std::to_string(il) + ".attn_kv_b.weight", GgmlType::kF32,
                              {Rkv, H * (dn + dv)},
                              [data, bytes](storage::ByteSink& s) { return s.Write(data, bytes); })
                      .ok());
    }
  };
  RewriteFile(tiny, legacy, r);
  auto gguf = storage::ReadGgufFile(legacy);
  ASSERT_TRUE(gguf.ok());
  const tools::Verdict verdict = tools::CheckRunnable(*gguf);
  EXPECT_TRUE(verdict.runnable) << verdict.text;
  std::vector<float> a2, b2;
  const auto a = Logits(tiny, &a2), b = Logits(legacy, &b2);
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    ASSERT_EQ(a[i], b[i]) << i;  // the split rebuilds the same F32 weights bit for bit
    ASSERT_EQ(a2[i], b2[i]) << i;
  }
  std::filesystem::remove(tiny);
  std::filesystem::remove(legacy);
}

}  // namespace
}  // namespace strata::engine

#include "tools/inspect.h"

#include <algorithm>
#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "engine/deepseek2_config.h"
#include "engine/deepseek2_tensors.h"
#include "storage/pack_writer.h"
#include "tiers/heat_profile.h"
#include "tiers/residency_plan.h"
#include "tiers/tensor_class.h"
#include "util/size_parse.h"

namespace strata::tools {
namespace {

using storage::GgufFile;
using storage::TensorInfo;

std::string ArchOf(const GgufFile& f) { return f.GetStringOr("general.architecture", "?"); }

// Metadata keys whose values are too long to print in full.
bool IsBulkKey(const std::string& key) {
  return key == "tokenizer.ggml.tokens" || key == "tokenizer.ggml.token_type" ||
         key == "tokenizer.ggml.merges" || key == "tokenizer.ggml.scores" ||
         key == "tokenizer.chat_template";
}

std::string ShapeOf(const std::vector<uint64_t>& ne) {
  std::string s = "[";
  for (size_t i = 0; i < ne.size(); ++i) s += (i ? ", " : "") + std::to_string(ne[i]);
  return s + "]";
}

uint64_t ExpertsPerToken(const GgufFile& f) {
  return f.GetUnsignedOr(ArchOf(f) + ".expert_used_count", 0);
}

}  // namespace

Verdict CheckRunnable(const GgufFile& f) {
  const std::string arch = ArchOf(f);
  if (f.tensors().empty()) {
    return {false, "valid GGUF with no tensors (a vocabulary-only file): nothing to run"};
  }
  if (arch != engine::kArchDeepseek2 && arch != engine::kArchDeepseek2Engram &&
      arch != engine::kArchDeepseek4) {
    return {false, "valid GGUF; architecture '" + arch +
                       "' is not one strata runs (deepseek2, deepseek2-engram, deepseek4)"};
  }
  auto config = engine::Deepseek2Config::FromGguf(f);
  if (!config.ok()) return {false, config.status().message()};
  // Every tensor the deepseek2 graph needs must be there with the right shape.
  // The first routed layer (V4: the first after the hash-routed ones) shows whether
  // the file carries router biases.
  const uint32_t first_routed =
      config->is_v4() ? std::min(config->v4.hash_layers, config->n_layer - 1) : config->n_leading_dense;
  const bool has_bias =
      f.FindTensor("blk." + std::to_string(first_routed) + ".exp_probs_b.bias") != nullptr;
  for (const auto& spec : engine::Deepseek2TensorPlan(*config, has_bias)) {
    if (config->legacy_kv_b && spec.name.ends_with("attn_k_b.weight")) {
      // Old files carry attn_kv_b [Rkv, H*(dn+dv)] instead of attn_k_b and attn_v_b.
      const std::string kv_b = spec.name.substr(0, spec.name.size() - 15) + "attn_kv_b.weight";
      const TensorInfo* t = f.FindTensor(kv_b);
      const std::vector<uint64_t> want = {
          config->kv_lora_rank, uint64_t{config->n_head} * (config->qk_nope + config->v_head)};
      if (!t) return {false, f.path() + ": missing tensor '" + kv_b + "'"};
      std::vector<uint64_t> ne(t->ne.begin(), t->ne.begin() + t->n_dims);
      if (ne != want) {
        return {false, f.path() + ": tensor '" + kv_b + "' has shape " + ShapeOf(ne) +
                           " but the metadata implies " + ShapeOf(want)};
      }
      continue;
    }
    if (config->legacy_kv_b && spec.name.ends_with("attn_v_b.weight")) continue;
    const TensorInfo* t = f.FindTensor(spec.name);
    if (!t) return {false, f.path() + ": missing tensor '" + spec.name + "'"};
    std::vector<uint64_t> ne(t->ne.begin(), t->ne.begin() + t->n_dims);
    // Some deepseek4 forks store attn_output_a as [H*D/G, Ro, G]: the same bytes.
    const bool grouped_3d = spec.name.ends_with("attn_output_a.weight") && ne.size() == 3 &&
                            ne[0] == spec.ne[0] && ne[1] * ne[2] == spec.ne[1] &&
                            ne[2] == config->v4.o_groups;
    if (ne != spec.ne && !grouped_3d) {
      return {false, f.path() + ": tensor '" + spec.name + "' has shape " + ShapeOf(ne) +
                         " but the metadata implies " + ShapeOf(spec.ne)};
    }
  }
  if (const auto* tokens = f.Find("tokenizer.ggml.tokens")) {
    const TensorInfo* embd = f.FindTensor("token_embd.weight");
    if (embd && tokens->items().size() != embd->ne[1]) {
      return {false, f.path() + ": vocabulary has " + std::to_string(tokens->items().size()) +
                         " tokens but token_embd has " + std::to_string(embd->ne[1]) + " rows"};
    }
  }
  return {true, "OK: " + arch + " model, every tensor present with the expected shape"};
}

namespace {

// `inspect --profile`: what the heat profile knows, and how much of the expert use the
// hottest bundles cover (what an LFU cache of that size would hit).
Status InspectProfile(const InspectOptions& o, const GgufFile& f) {
  auto config = engine::Deepseek2Config::FromGguf(f);
  if (!config.ok()) return config.status();
  tiers::PlanInputs in;
  in.experts_per_token = config->n_expert_used;
  STRATA_ASSIGN_OR_RETURN(tiers::ResidencyPlan plan, tiers::PlanResidency(f, in));
  const std::string path = tiers::HeatProfile::PathFor(f.path(), o.profile_file);
  STRATA_ASSIGN_OR_RETURN(auto profile, tiers::HeatProfile::OpenExisting(
                                            path, plan.total_bundles, tiers::ModelFingerprint(f)));
  const std::vector<uint64_t> counts = profile->Counts();
  struct Hot {
    uint64_t uses;
    uint32_t layer, expert;
  };
  std::vector<Hot> hot;
  uint64_t total = 0;
  size_t b = 0;
  for (const tiers::MoeLayer& L : plan.moe_layers) {
    for (uint32_t e = 0; e < L.n_expert; ++e, ++b) {
      hot.push_back({counts[b], L.layer, e});
      total += counts[b];
    }
  }
  std::stable_sort(hot.begin(), hot.end(),
                   [](const Hot& a, const Hot& c) { return a.uses > c.uses; });
  auto covered = [&](double share) {
    uint64_t sum = 0;
    const auto n = static_cast<size_t>(share * static_cast<double>(hot.size()));
    for (size_t i = 0; i < n; ++i) sum += hot[i].uses;
    return total ? 100.0 * static_cast<double>(sum) / static_cast<double>(total) : 0.0;
  };
  if (o.json) {
    nlohmann::ordered_json j;
    j["profile"] = path;
    j["runs"] = profile->runs();
    j["uses"] = total;
    j["bundles"] = hot.size();
    j["hottest_share_covers_percent"] = {
        {"10%", covered(0.10)}, {"25%", covered(0.25)}, {"50%", covered(0.50)}};
    auto& top = j["hottest"] = nlohmann::ordered_json::array();
    for (size_t i = 0; i < std::min<size_t>(20, hot.size()); ++i) {
      top.push_back({{"layer", hot[i].layer}, {"expert", hot[i].expert}, {"uses", hot[i].uses}});
    }
    std::printf("%s\n", j.dump(2).c_str());
    return Status::Ok();
  }
  std::printf("heat profile %s: %llu runs, %llu expert uses over %zu bundles\n", path.c_str(),
              static_cast<unsigned long long>(profile->runs()),
              static_cast<unsigned long long>(total), hot.size());
  std::printf("  the hottest 10%% of bundles cover %.1f%% of uses, 25%%: %.1f%%, 50%%: %.1f%%\n",
              covered(0.10), covered(0.25), covered(0.50));
  std::printf("  %-6s %-7s %10s %8s\n", "layer", "expert", "uses", "share");
  for (size_t i = 0; i < std::min<size_t>(10, hot.size()); ++i) {
    std::printf(
        "  %-6u %-7u %10llu %7.2f%%\n", hot[i].layer, hot[i].expert,
        static_cast<unsigned long long>(hot[i].uses),
        total ? 100.0 * static_cast<double>(hot[i].uses) / static_cast<double>(total) : 0.0);
  }
  return Status::Ok();
}

}  // namespace

struct PackClassSummary {
  std::set<std::string> codecs;               // as asked for, per layer
  std::map<std::string, uint64_t> stored_as;  // codec actually used -> bundles
  uint64_t bundles = 0;
  uint64_t raw = 0;
  uint64_t stored = 0;
};

std::map<std::string, PackClassSummary> SummarizePack(const storage::PackIndex& pack) {
  std::map<std::string, PackClassSummary> out;
  for (const storage::PackedLayer& L : pack.layers) {
    PackClassSummary& s = out[storage::BundleClassName(L.types)];
    s.codecs.insert(L.codec_label);
    for (const storage::PackEntry& e : L.entries) {
      ++s.bundles;
      ++s.stored_as[storage::CodecByteName(e.codec)];
      s.raw += L.raw_bytes();
      s.stored += e.stored;
    }
  }
  return out;
}

std::string Join(const std::set<std::string>& items) {
  std::string s;
  for (const std::string& i : items) s += (s.empty() ? "" : ",") + i;
  return s;
}

std::string ClassLabel(const storage::TensorInfo& t) {
  if (storage::IsPackBlobName(t.name)) return "pack blob";
  std::string c(tiers::TensorClassName(tiers::ClassifyTensor(t.name)));
  return t.packed ? c + " (packed)" : c;
}

Status RunInspect(const InspectOptions& o) {
  STRATA_ASSIGN_OR_RETURN(GgufFile f, storage::ReadGgufFile(o.model));
  if (o.profile || !o.profile_file.empty()) return InspectProfile(o, f);
  const Verdict verdict = CheckRunnable(f);
  const tiers::ModelFootprint fp = tiers::ComputeFootprint(f, ExpertsPerToken(f));
  auto config = engine::Deepseek2Config::FromGguf(f);
  const bool synthetic = f.Find("strata.synthetic.seed") != nullptr;

  std::map<tiers::TensorClass, uint64_t> count_by_class;
  for (const auto& t : f.tensors()) {
    if (!storage::IsPackBlobName(t.name)) ++count_by_class[tiers::ClassifyTensor(t.name)];
  }
  const auto pack_summary =
      f.pack() ? SummarizePack(*f.pack()) : std::map<std::string, PackClassSummary>{};
  const tiers::TensorClass classes[] = {
      tiers::TensorClass::kPinnedDense, tiers::TensorClass::kRoutedExpert,
      tiers::TensorClass::kEmbedding, tiers::TensorClass::kEngram};
  auto bytes_of = [&](tiers::TensorClass c) {
    switch (c) {
      case tiers::TensorClass::kPinnedDense:
        return fp.pinned_dense_bytes;
      case tiers::TensorClass::kRoutedExpert:
        return fp.routed_expert_bytes;
      case tiers::TensorClass::kEmbedding:
        return fp.embedding_bytes;
      case tiers::TensorClass::kEngram:
        return fp.engram_bytes;
    }
    return uint64_t{0};
  };

  if (o.json) {
    nlohmann::ordered_json j;
    j["file"] = f.path();
    j["file_bytes"] = f.file_size();
    j["shards"] = nlohmann::ordered_json::array();
    for (const storage::GgufShard& s : f.shards()) {
      j["shards"].push_back({{"path", s.path}, {"bytes", s.size}, {"tensors", s.tensors}});
    }
    j["gguf_version"] = f.version();
    j["alignment"] = f.alignment();
    j["data_offset"] = f.data_offset();
    j["architecture"] = ArchOf(f);
    j["synthetic"] = synthetic;
    auto& meta = j["metadata"] = nlohmann::ordered_json::object();
    for (const auto& [key, value] : f.metadata()) {
      if (value.type() == storage::GgufType::kArray) {
        meta[key] = {{"type", "array"},
                     {"element_type", std::string(storage::GgufTypeName(value.elem_type()))},
                     {"count", value.items().size()}};
      } else if (const std::string* s = value.AsString()) {
        meta[key] = IsBulkKey(key) ? nlohmann::ordered_json(s->size()) : nlohmann::ordered_json(*s);
      } else if (auto u = value.AsSigned()) {
        meta[key] = *u;
      } else if (auto uu = value.AsUnsigned()) {
        meta[key] = *uu;
      } else if (auto d = value.AsFloat()) {
        meta[key] = *d;
      } else if (auto b = value.AsBool()) {
        meta[key] = *b;
      }
    }
    if (config.ok()) {
      const auto& c = *config;
      j["hyperparameters"] = {
          {"n_layer", c.n_layer},
          {"n_leading_dense", c.n_leading_dense},
          {"n_embd", c.n_embd},
          {"n_vocab", c.n_vocab},
          {"n_head", c.n_head},
          {"q_lora_rank", c.q_lora_rank},
          {"kv_lora_rank", c.kv_lora_rank},
          {"qk_nope", c.qk_nope},
          {"qk_rope", c.qk_rope},
          {"v_head", c.v_head},
          {"n_expert", c.n_expert},
          {"n_expert_used", c.n_expert_used},
          {"n_expert_shared", c.n_expert_shared},
          {"n_ff_exp", c.n_ff_exp},
          {"n_ff", c.n_ff},
          {"n_group", c.n_group},
          {"n_group_used", c.n_group_used},
          {"gating", c.gating == engine::GatingFunc::kSigmoid ? "sigmoid" : "softmax"}};
    }
    auto& totals = j["totals"] = nlohmann::ordered_json::object();
    for (auto c : classes) {
      totals[std::string(tiers::TensorClassName(c))] = {{"tensors", count_by_class[c]},
                                                        {"bytes", bytes_of(c)}};
    }
    j["total_bytes"] = fp.total_bytes;
    j["moe_layers"] = fp.moe_layers;
    j["experts_per_layer"] = fp.experts_per_layer;
    j["expert_bundle_bytes"] = fp.expert_bundle_bytes;
    j["active_bytes_per_token"] = fp.active_bytes_per_token;
    if (o.tensors) {
      auto& ts = j["tensors"] = nlohmann::ordered_json::array();
      for (const auto& t : f.tensors()) {
        ts.push_back({{"name", t.name},
                      {"type", std::string(storage::TypeName(t.type))},
                      {"ne", std::vector<uint64_t>(t.ne.begin(), t.ne.begin() + t.n_dims)},
                      {"offset", t.file_offset},
                      {"bytes", t.bytes},
                      {"packed", t.packed},
                      {"class", ClassLabel(t)}});
      }
    }
    if (f.pack()) {
      auto& p = j["pack"] = {{"version", f.pack()->version}, {"source", f.pack()->source}};
      auto& cls = p["classes"] = nlohmann::ordered_json::object();
      for (const auto& [name, s] : pack_summary) {
        cls[name] = {
            {"codec", Join(s.codecs)},
            {"stored_as", s.stored_as},
            {"bundles", s.bundles},
            {"raw_bytes", s.raw},
            {"stored_bytes", s.stored},
            {"ratio", s.raw ? static_cast<double>(s.stored) / static_cast<double>(s.raw) : 1.0}};
      }
    }
    j["verdict"] = {{"runnable", verdict.runnable}, {"text", verdict.text}};
    std::printf("%s\n", j.dump(2).c_str());
    return Status::Ok();
  }

  std::printf("%s  (%s)\n", f.path().c_str(), FormatBytes(f.file_size()).c_str());
  if (f.is_split()) {
    std::printf("  split set of %zu shards (llama.cpp gguf-split):\n", f.shards().size());
    for (const storage::GgufShard& s : f.shards()) {
      std::printf("    %s  %s, %llu tensors\n", s.path.c_str(), FormatBytes(s.size).c_str(),
                  static_cast<unsigned long long>(s.tensors));
    }
  }
  std::printf("  GGUF v%u, alignment %llu, %zu metadata keys, %zu tensors, data at offset %llu\n",
              f.version(), static_cast<unsigned long long>(f.alignment()), f.metadata().size(),
              f.tensors().size(), static_cast<unsigned long long>(f.data_offset()));
  std::printf("  architecture %s, name \"%s\"%s\n", ArchOf(f).c_str(),
              f.GetStringOr("general.name", "").c_str(),
              synthetic ? "  [synthetic: random weights made by strata make-model]" : "");
  if (config.ok()) {
    const auto& c = *config;
    std::printf("\nhyperparameters\n");
    std::printf("  layers %u (%u dense, %u MoE)   embedding %u   vocab %u   context %u\n",
                c.n_layer, c.n_leading_dense, c.n_moe_layers(), c.n_embd, c.n_vocab,
                c.context_length);
    if (c.is_v4()) {
      const auto& v = c.v4;
      std::string ratios;
      for (uint32_t r : v.compress_ratios) ratios += (ratios.empty() ? "" : ",") + std::to_string(r);
      std::printf("  V4 attention: %u heads of %u (rope %u), q_lora %u, window %u, output %u groups "
                  "x %u\n",
                  c.n_head, v.head_dim, c.qk_rope, c.q_lora_rank, v.sliding_window, v.o_groups,
                  v.o_lora_rank);
      std::printf("  compress ratios [%s], indexer %u heads x %u top-%u, hash-routed layers %u\n",
                  ratios.c_str(), v.index_heads, v.index_dim, v.index_topk, v.hash_layers);
    } else {
      std::printf("  MLA: %u heads, q_lora %s, kv_lora %u, qk_nope %u, qk_rope %u, v_head %u%s\n",
                  c.n_head, c.q_lora_rank ? std::to_string(c.q_lora_rank).c_str() : "none",
                  c.kv_lora_rank, c.qk_nope, c.qk_rope, c.v_head,
                  c.legacy_kv_b ? " (legacy attn_kv_b)" : "");
    }
    std::printf("  MoE: %u routed experts, top-%u, %u shared, expert ffn %u, dense ffn %u\n",
                c.n_expert, c.n_expert_used, c.n_expert_shared, c.n_ff_exp, c.n_ff);
    std::printf("  router: %s, groups %u/%u, weights scale %g, norm %s\n",
                c.gating == engine::GatingFunc::kSigmoid        ? "sigmoid"
                : c.gating == engine::GatingFunc::kSqrtSoftplus ? "sqrt-softplus"
                                                                : "softmax",
                c.n_group,
                c.n_group_used, c.expert_weights_scale, c.expert_weights_norm ? "yes" : "no");
    if (c.is_v4()) {
      std::printf("  rope: base %g (window-only layers); compressed layers base %g, yarn x%g from "
                  "context %u\n",
                  c.rope_freq_base, c.v4.compress_rope_base, c.rope_scaling_factor,
                  c.rope_orig_context);
    } else if (c.rope_scaling_type == "yarn") {
      std::printf("  rope: base %g, yarn x%g from context %u, log-multiplier %g\n",
                  c.rope_freq_base, c.rope_scaling_factor, c.rope_orig_context,
                  c.yarn_log_multiplier);
    } else {
      std::printf("  rope: base %g, no scaling\n", c.rope_freq_base);
    }
  }
  if (const auto* tokens = f.Find("tokenizer.ggml.tokens")) {
    const auto* merges = f.Find("tokenizer.ggml.merges");
    std::printf(
        "  tokenizer: %s / %s, %zu tokens, %zu merges, bos %llu, eos %llu, chat template %s\n",
        f.GetStringOr("tokenizer.ggml.model", "?").c_str(),
        f.GetStringOr("tokenizer.ggml.pre", "?").c_str(), tokens->items().size(),
        merges ? merges->items().size() : size_t{0},
        static_cast<unsigned long long>(f.GetUnsignedOr("tokenizer.ggml.bos_token_id", 0)),
        static_cast<unsigned long long>(f.GetUnsignedOr("tokenizer.ggml.eos_token_id", 0)),
        f.Find("tokenizer.chat_template") ? "yes" : "no");
  }

  if (o.all_metadata) {
    std::printf("\nmetadata\n");
    for (const auto& [key, value] : f.metadata()) {
      std::printf("  %-48s %-4s %s\n", key.c_str(),
                  std::string(storage::GgufTypeName(value.type())).c_str(),
                  value.ToDisplayString(IsBulkKey(key) ? 60 : 200).c_str());
    }
  }

  std::printf("\nfootprint by residency class\n");
  std::printf("  %-16s %8s %12s %7s\n", "class", "tensors", "bytes", "share");
  for (auto c : classes) {
    const uint64_t b = bytes_of(c);
    std::printf("  %-16s %8llu %12s %6.1f%%\n", std::string(tiers::TensorClassName(c)).c_str(),
                static_cast<unsigned long long>(count_by_class[c]), FormatBytes(b).c_str(),
                fp.total_bytes
                    ? 100.0 * static_cast<double>(b) / static_cast<double>(fp.total_bytes)
                    : 0.0);
  }
  std::printf("  %-16s %8zu %12s\n", "total",
              f.tensors().size() - (f.pack() ? f.pack()->layers.size() : 0),
              FormatBytes(fp.total_bytes).c_str());
  if (fp.moe_layers > 0) {
    std::printf("  expert bundle (gate+up+down of one expert): %s; %u MoE layers x %llu experts\n",
                FormatBytes(fp.expert_bundle_bytes).c_str(), fp.moe_layers,
                static_cast<unsigned long long>(fp.experts_per_layer));
  }
  std::printf(
      "  active per token: %s (all pinned dense + %llu experts x %u layers + 1 embedding row)\n",
      FormatBytes(fp.active_bytes_per_token).c_str(),
      static_cast<unsigned long long>(ExpertsPerToken(f)), fp.moe_layers);

  if (f.pack()) {
    std::printf("\npacked by strata pack (format v%u, from %s): one aligned read per expert\n",
                f.pack()->version, f.pack()->source.c_str());
    std::printf("  %-16s %-14s %8s %11s %11s %7s  %s\n", "bundle class", "codec", "bundles", "raw",
                "stored", "ratio", "stored as");
    for (const auto& [name, s] : pack_summary) {
      std::string as;
      for (const auto& [codec, n] : s.stored_as) {
        as += (as.empty() ? "" : ", ") + codec + " " + std::to_string(n);
      }
      std::printf("  %-16s %-14s %8llu %11s %11s %7.3f  %s\n", name.c_str(), Join(s.codecs).c_str(),
                  static_cast<unsigned long long>(s.bundles), FormatBytes(s.raw).c_str(),
                  FormatBytes(s.stored).c_str(),
                  s.raw ? static_cast<double>(s.stored) / static_cast<double>(s.raw) : 1.0,
                  as.c_str());
    }
  }

  if (o.tensors && !f.tensors().empty()) {
    std::printf("\ntensors\n  %-36s %-7s %-22s %12s %14s  %s\n", "name", "type", "shape", "bytes",
                "offset", "class");
    for (const auto& t : f.tensors()) {
      std::printf("  %-36s %-7s %-22s %12s %14llu  %s\n", t.name.c_str(),
                  std::string(storage::TypeName(t.type)).c_str(), t.ShapeString().c_str(),
                  FormatBytes(t.bytes).c_str(), static_cast<unsigned long long>(t.file_offset),
                  ClassLabel(t).c_str());
    }
  }
  std::printf("\nverdict: %s\n", verdict.text.c_str());
  return Status::Ok();
}

}  // namespace strata::tools

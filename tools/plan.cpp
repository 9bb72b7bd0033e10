#include "tools/plan.h"

#include <cstdio>
#include <nlohmann/json.hpp>

#include "engine/budget_choice.h"
#include "engine/deepseek2_config.h"
#include "engine/tiered_model.h"
#include "util/available_memory.h"
#include "tiers/heat_profile.h"
#include "tiers/tensor_class.h"
#include "tools/machine_probe.h"
#include "util/size_parse.h"

namespace strata::tools {
namespace {

struct Row {
  std::string budget_text;
  tiers::ResidencyPlan plan;
  DecodePrediction prediction;
};

}  // namespace

Status RunPlan(const PlanOptions& o) {
  if (o.model.empty()) return Status::InvalidArgument("plan: -m/--model is required");
  STRATA_ASSIGN_OR_RETURN(engine::TierOptions tier, ToTierOptions(o.tiers));
  STRATA_ASSIGN_OR_RETURN(storage::GgufFile gguf, storage::ReadGgufFile(o.model));
  STRATA_ASSIGN_OR_RETURN(engine::Deepseek2Config config, engine::Deepseek2Config::FromGguf(gguf));

  tier.session = engine::SessionShape{o.ctx_size, o.batch_size,
                                      o.cache_type == "f32" ? storage::GgmlType::kF32
                                                            : storage::GgmlType::kF16,
                                      o.threads};
  const AvailableMemory available = ReadAvailableMemory();
  STRATA_ASSIGN_OR_RETURN(const engine::BudgetChoice choice,
                          engine::ChooseBudget(gguf, config, tier, available));
  std::vector<std::pair<std::string, uint64_t>> budgets;
  if (tier.ram_budget_auto) {
    budgets.emplace_back("auto (" + FormatBytes(choice.budget) + ")", choice.budget);
  } else if (!tier.ram_budget && choice.budget) {
    budgets.emplace_back("default (" + FormatBytes(choice.budget) + ")", choice.budget);
  } else {
    budgets.emplace_back(choice.budget ? FormatBytes(choice.budget) : "unlimited", choice.budget);
  }
  for (const std::string& text : o.budgets) {
    auto b = ParseSize(text);
    if (!b.ok()) return b.status().WithContext("--budgets");
    budgets.emplace_back(*b ? FormatBytes(*b) : "unlimited", *b);
  }

  // Heat profile, if one exists (plan never creates one).
  std::vector<uint64_t> heat;
  {
    auto floor_plan = tiers::PlanResidency(gguf, {.ram_budget = 0,
                                                  .expert_cache_bytes = 0,
                                                  .experts_per_token = config.n_expert_used,
                                                  .pin_patterns = tier.pins,
                                                  .engram_cache_bytes = tier.engram_cache});
    if (!floor_plan.ok()) return floor_plan.status();
    if (tier.use_profile && floor_plan->total_bundles > 0) {
      const std::string path = tiers::HeatProfile::PathFor(gguf.path(), tier.profile);
      auto profile = tiers::HeatProfile::OpenExisting(path, floor_plan->total_bundles,
                                                      tiers::ModelFingerprint(gguf));
      if (profile.ok()) {
        heat = (*profile)->Counts();
      } else if (!tier.profile.empty()) {
        return profile.status();
      }
    }
  }

  engine::ThreadPool pool(o.threads);
  const DecodeCost cost = EstimateDecodeCost(gguf, config.n_expert_used, pool);
  storage::DriveProfile drive;
  if (o.measure_drive) {
    STRATA_ASSIGN_OR_RETURN(drive, storage::MeasureDrive(o.model));
  }
  // Engram rows a decoded token reads when its tables stream: every hash head of every
  // order, in every Engram layer.
  const uint32_t engram_rows = config.engram.n_layers() * config.engram.cols();
  std::vector<Row> rows;
  for (const auto& [text, bytes] : budgets) {
    auto plan = engine::PlanForBudget(gguf, config, tier, choice, bytes);
    if (!plan.ok()) {
      if (budgets.size() == 1) return plan.status();
      std::fprintf(stderr, "strata plan: %s\n", plan.status().message().c_str());
      continue;
    }
    rows.push_back({text, *plan, PredictDecode(*plan, cost, drive, heat, engram_rows)});
  }
  uint64_t engram_bytes = 0;
  for (const storage::TensorInfo& t : gguf.tensors()) {
    if (tiers::ClassifyTensor(t.name) == tiers::TensorClass::kEngram) engram_bytes += t.bytes;
  }

  const tiers::ResidencyPlan& any = rows.empty() ? tiers::ResidencyPlan{} : rows.front().plan;
  if (o.json) {
    nlohmann::ordered_json j;
    j["model"] = o.model;
    j["file_bytes"] = gguf.file_size();
    j["pinned_dense_bytes"] = any.pinned_dense_bytes;
    j["routed_expert_bytes"] = any.routed_expert_bytes;
    j["bundles"] = any.total_bundles;
    j["slot_bytes"] = any.slot_bytes;
    j["slot_classes"] = nlohmann::ordered_json::array();
    for (const tiers::SlotClass& c : any.slot_classes) {
      j["slot_classes"].push_back({{"slot_bytes", c.slot_bytes}, {"layers", c.layers}});
    }
    j["min_budget_bytes"] = any.min_budget;
    j["session"] = {{"ctx_size", o.ctx_size},
                    {"batch_size", o.batch_size},
                    {"kv_bytes", choice.session.kv_bytes},
                    {"scratch_bytes", choice.session.scratch_bytes}};
    j["derived_bytes"] = choice.derived_bytes;
    j["available_bytes"] = available.bytes();
    if (config.engram.enabled()) {
      j["engram"] = {{"tables", config.engram.n_layers()},
                     {"table_bytes", engram_bytes},
                     {"row_bytes", config.engram.row_bytes()},
                     {"rows_per_token", engram_rows}};
    }
    if (o.measure_drive) {
      j["drive"] = {{"sequential_bytes_per_s", drive.seq_bytes_per_s},
                    {"random_4k_iops", drive.rand_4k_iops},
                    {"queue_depth", drive.rand_depth},
                    {"direct", drive.direct},
                    {"backend", storage::IoBackendName(drive.backend)}};
    }
    j["ram_read_bytes_per_s"] = cost.ram_bytes_per_s;
    j["compute_s_per_token"] = {{"dense", cost.dense_s}, {"experts", cost.expert_s}};
    auto& arr = j["budgets"] = nlohmann::ordered_json::array();
    for (const Row& r : rows) {
      arr.push_back({{"budget", r.budget_text},
                     {"budget_bytes", r.plan.budget},
                     {"mode", r.plan.all_resident ? "all-in-RAM" : "tiered"},
                     {"pinned_bytes", r.plan.pinned_dense_bytes},
                     {"pinned_bundles", r.plan.pinned_bundles},
                     {"cache_slots", r.plan.cache_slots},
                     {"resident_bytes", r.plan.resident_bytes()},
                     {"predicted_hit_rate", r.prediction.hit_rate},
                     {"predicted_miss_bytes_per_token", r.prediction.miss_bytes_per_token},
                     {"predicted_decode_tok_per_s", r.prediction.tok_per_s},
                     {"engram_tables", r.plan.engram_tables.empty() ? "in RAM" : "on disk"},
                     {"engram_row_cache_bytes", r.plan.engram_cache_bytes},
                     {"predicted_engram_read_s_per_token", r.prediction.engram_io_s},
                     {"basis", r.prediction.basis}});
    }
    std::printf("%s\n", j.dump(2).c_str());
    return Status::Ok();
  }
  std::printf("model %s: %s\n", o.model.c_str(), FormatBytes(gguf.file_size()).c_str());
  std::printf(
      "  pinned dense %s; routed experts %s in %llu bundles (slot %s)\n",
      FormatBytes(any.pinned_dense_bytes).c_str(), FormatBytes(any.routed_expert_bytes).c_str(),
      static_cast<unsigned long long>(any.total_bundles), FormatBytes(any.slot_bytes).c_str());
  if (any.slot_classes.size() > 1) {
    // Layers of different expert types: each size of slot serves its own layers.
    std::string classes;
    for (const tiers::SlotClass& c : any.slot_classes) {
      classes += (classes.empty() ? "" : ", ") + FormatBytes(c.slot_bytes) + " x " + std::to_string(c.layers) +
                 " layer" + (c.layers == 1 ? "" : "s");
    }
    std::printf("  slots sized per layer (its experts' types): %s\n", classes.c_str());
  }
  if (config.engram.enabled()) {
    std::printf(
        "  engram: %u tables, %s (rows of %llu B); a token reads %u rows; on disk they stream "
        "through a row cache of %s, counted in the budget\n",
        config.engram.n_layers(), FormatBytes(engram_bytes).c_str(),
        static_cast<unsigned long long>(config.engram.row_bytes()), engram_rows,
        FormatBytes(tier.engram_cache).c_str());
  }
  std::printf("  session %s, counted in the budget\n",
              engine::DescribeSession(*choice.shape, choice.session).c_str());
  if (choice.derived_bytes) {
    std::printf("  legacy attn_kv_b split into k_b and v_b at load: %s more than the file's\n",
                FormatBytes(choice.derived_bytes).c_str());
  }
  std::printf("  available to this process: %s\n", available.Describe().c_str());
  if (!choice.note.empty()) std::printf("  %s\n", choice.note.c_str());
  std::printf("  floor (pinned%s + KV cache and scratch + %u experts x %zu MoE layers): %s = %llu bytes\n",
              any.engram_cache_bytes ? " + Engram row cache" : "", config.n_expert_used,
              any.moe_layers.size(), FormatBytes(any.min_budget).c_str(),
              static_cast<unsigned long long>(any.min_budget));
  if (o.measure_drive) {
    std::printf("  drive: sequential %.2f GB/s, random 4 KiB %.1fk IOPS at depth %u (%s%s)\n",
                drive.seq_bytes_per_s / 1e9, drive.rand_4k_iops / 1e3, drive.rand_depth,
                std::string(storage::IoBackendName(drive.backend)).c_str(),
                drive.direct ? ", O_DIRECT" : ", buffered: includes the page cache");
  }
  std::printf(
      "  RAM read %.1f GB/s; decode compute %.1f ms dense + %.1f ms experts per token "
      "(%u threads)\n",
      cost.ram_bytes_per_s / 1e9, cost.dense_s * 1e3, cost.expert_s * 1e3, pool.num_threads());
  std::printf("\n  %-22s %-10s %10s %8s %9s %12s %11s %7s  %s\n", "budget", "mode", "resident",
              "slots", "hit", "miss/token", "decode", "engram", "basis");
  for (const Row& r : rows) {
    const std::string speed = r.prediction.tok_per_s > 0
                                  ? std::to_string(r.prediction.tok_per_s).substr(0, 6) + " t/s"
                                  : "-";
    const char* engram = !config.engram.enabled()        ? "-"
                         : r.plan.engram_tables.empty() ? "RAM"
                                                        : "disk";
    std::printf("  %-22s %-10s %10s %8llu %8.1f%% %8.1f MiB %11s %7s  %s\n",
                r.budget_text.c_str(), r.plan.all_resident ? "all-in-RAM" : "tiered",
                FormatBytes(r.plan.resident_bytes()).c_str(),
                static_cast<unsigned long long>(r.plan.all_resident ? r.plan.pinned_bundles
                                                                    : r.plan.cache_slots),
                r.prediction.hit_rate * 100, r.prediction.miss_bytes_per_token / (1 << 20),
                speed.c_str(), engram, r.prediction.basis.c_str());
  }
  return Status::Ok();
}

}  // namespace strata::tools

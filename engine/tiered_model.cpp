#include "engine/tiered_model.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <numeric>
#include <set>
#include <string>

#include "tiers/tensor_class.h"
#include "util/log.h"
#include "util/progress.h"
#include "util/size_parse.h"

namespace strata::engine {

TieredModel::~TieredModel() {
  model_.reset();  // views into the cache and the pinned tensors go first
  cache_.reset();
  engram_rows_.reset();
}

Result<std::unique_ptr<TieredModel>> TieredModel::Open(
    const std::string& path, const TierOptions& o, const std::optional<AvailableMemory>& available) {
  const auto start = std::chrono::steady_clock::now();
  auto tm = std::unique_ptr<TieredModel>(new TieredModel());
  // Plan from the header first, so a budget below the floor is refused before any
  // weight is read.
  STRATA_ASSIGN_OR_RETURN(storage::GgufFile header, storage::ReadGgufFile(path));
  STRATA_ASSIGN_OR_RETURN(Deepseek2Config config, Deepseek2Config::FromGguf(header));
  STRATA_ASSIGN_OR_RETURN(const BudgetChoice choice,
                          ChooseBudget(header, config, o, available.value_or(ReadAvailableMemory())));
  // Always shown: the user should see a budget strata chose.
  if (!choice.note.empty()) std::fprintf(stderr, "strata: %s\n", choice.note.c_str());
  const uint64_t budget = choice.budget;
  STRATA_ASSIGN_OR_RETURN(const tiers::ResidencyPlan header_plan,
                          PlanForBudget(header, config, o, choice, budget));
  std::set<std::string> streamed;  // Engram tables left on disk
  for (const storage::TensorInfo* t : header_plan.engram_tables) streamed.insert(t->name);

  tm->budget_ = std::make_unique<tiers::RamBudget>(o.mmap ? 0 : budget);
  ModelFile::Options fo;
  fo.mmap = o.mmap;
  fo.read_fn = o.pinned_read;
  fo.load = [&streamed](const storage::TensorInfo& t) {
    return !streamed.count(t.name) && !t.packed && !storage::IsPackBlobName(t.name) &&
           (tiers::ClassifyTensor(t.name) != tiers::TensorClass::kRoutedExpert ||
            !t.is_expert_stack());
  };
  std::unique_ptr<ProgressBar> load_bar;
  if (o.progress && !o.mmap) {
    uint64_t pinned = 0;
    for (const storage::TensorInfo& t : header.tensors()) pinned += fo.load(t) ? t.bytes : 0;
    load_bar = std::make_unique<ProgressBar>("loading pinned weights", pinned);
    fo.progress = load_bar.get();
  }
  STRATA_ASSIGN_OR_RETURN(auto file, ModelFile::Open(path, fo));
  if (load_bar) load_bar->Finish();
  // The plan the cache keeps points into this file's catalog.
  STRATA_ASSIGN_OR_RETURN(tiers::ResidencyPlan plan,
                          PlanForBudget(file->gguf(), config, o, choice, budget));
  if (!o.mmap) {
    STRATA_ASSIGN_OR_RETURN(tm->pinned_,
                            tm->budget_->Reserve(plan.pinned_dense_bytes + plan.derived_bytes,
                                                 "the pinned weights"));
    if (choice.shape) {
      STRATA_ASSIGN_OR_RETURN(
          tm->session_,
          tm->budget_->Reserve(plan.session_bytes,
                               "the KV cache and scratch (" +
                                   DescribeSession(*choice.shape, choice.session) + ")"));
    }
  }
  tiers::ExpertCacheOptions co;
  co.reader = o.reader;
  co.files = storage::FileExtentsOf(file->gguf());
  co.mmap = o.mmap;
  co.policy = o.policy;
  co.verify = o.verify || o.reader.backend == storage::IoBackend::kFault ||
              o.reader.backend == storage::IoBackend::kUringFault;
  co.record_trace = o.record_trace;
  co.pack_checksums = o.pack_checksums;
  STRATA_ASSIGN_OR_RETURN(tm->cache_, tiers::ExpertCache::Create(path, plan, *tm->budget_, co));
  if (!plan.engram_tables.empty()) {
    // One table per Engram layer, in layer order (the row cache's table index).
    std::vector<tiers::EngramTableRef> tables;
    for (uint32_t layer : config.engram.layer_ids) {
      const std::string name = "blk." + std::to_string(layer) + ".engram_embd.weight";
      const storage::TensorInfo* t = file->gguf().FindTensor(name);
      if (!t) return Status::NotFound(path + ": missing tensor '" + name + "'");
      tables.push_back({name, t->file_offset, t->ne[1], static_cast<uint32_t>(t->row_bytes())});
    }
    tiers::EngramCacheOptions eo;
    eo.capacity_bytes = plan.engram_cache_bytes;
    eo.reader = o.reader;
    eo.files = storage::FileExtentsOf(file->gguf());
    eo.verify = co.verify;
    STRATA_ASSIGN_OR_RETURN(
        tm->engram_rows_, tiers::EngramRowCache::Create(path, std::move(tables), *tm->budget_, eo));
  }
  STRATA_ASSIGN_OR_RETURN(
      tm->model_, DeepseekModel::Load(std::move(file), tm->cache_.get(), tm->engram_rows_.get()));

  std::vector<tiers::ExpertCache::Key> warm;
  if (o.use_profile && !o.mmap && tm->cache_->n_bundles() > 0) {
    // header.path() is a split set's first shard, whichever shard was named: one profile.
    const std::string ppath = tiers::HeatProfile::PathFor(header.path(), o.profile);
    const uint64_t id = tiers::ModelFingerprint(header);
    auto profile = tiers::HeatProfile::Open(ppath, tm->cache_->n_bundles(), id);
    if (profile.ok()) {
      tm->profile_ = std::move(profile).value();
      const std::vector<uint64_t> counts = tm->profile_->Counts();
      std::vector<uint32_t> order(counts.size());
      std::iota(order.begin(), order.end(), 0u);
      std::stable_sort(order.begin(), order.end(),
                       [&](uint32_t a, uint32_t b) { return counts[a] > counts[b]; });
      for (uint32_t b : order) {
        if (counts[b] == 0) break;
        warm.push_back(tm->cache_->KeyOf(b));
      }
    } else if (!o.profile.empty()) {
      return profile.status();  // asked for by name: say why it cannot be used
    } else {
      Log(LogModule::kTiers).info("heat profile off: {}", profile.status().message());
    }
  }
  std::unique_ptr<ProgressBar> warm_bar;
  if (o.progress && !o.mmap) {
    const uint64_t bundles =
        plan.pinned_bundles + std::min<uint64_t>(warm.size(), plan.cache_slots);
    if (bundles) {
      warm_bar = std::make_unique<ProgressBar>(
          plan.all_resident ? "loading experts" : "warming the expert cache",
          bundles * plan.slot_bytes);
    }
  }
  STRATA_RETURN_IF_ERROR(tm->cache_->Preload(warm, warm_bar.get()));
  if (warm_bar) warm_bar->Finish();
  tm->saved_counts_.assign(tm->cache_->n_bundles(), 0);
  tm->load_seconds_ =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return tm;
}

void TieredModel::SaveHeat() {
  if (!profile_) return;
  std::vector<uint64_t> counts = cache_->demand_counts();
  std::vector<uint64_t> delta(counts.size());
  bool any = false;
  for (size_t i = 0; i < counts.size(); ++i) {
    delta[i] = counts[i] - saved_counts_[i];
    any = any || delta[i] != 0;
  }
  if (!any) return;
  profile_->Add(delta);
  saved_counts_ = std::move(counts);
}

std::string TieredModel::TierSummary() const {
  return std::string(cache_->mode()) + ", budget " +
         (budget_->limit() ? FormatBytes(budget_->limit()) : std::string("unlimited")) + ", io " +
         (cache_->options().mmap ? std::string("mmap")
                                 : std::string(storage::IoBackendName(cache_->backend())));
}

std::string TieredModel::TierReport(const tiers::CacheStats& s, uint64_t tokens,
                                    const tiers::EngramStats& e) const {
  const double per_token = tokens ? 1.0 / static_cast<double>(tokens) : 0.0;
  char line[480];
  int n = std::snprintf(line, sizeof line,
                        "tiers: %s: expert hit %.1f%%, %.1f MiB read/token, stall %.1f ms/token",
                        TierSummary().c_str(), s.hit_rate() * 100.0,
                        static_cast<double>(s.bytes_read) / (1 << 20) * per_token,
                        static_cast<double>(s.stall_ns) * 1e-6 * per_token);
  if (engram_rows_ && n > 0 && static_cast<size_t>(n) < sizeof line) {
    std::snprintf(line + n, sizeof line - static_cast<size_t>(n),
                  "; engram cache %s: hit %.1f%%, %.1f rows read/token (%.1f KiB), stall %.2f "
                  "ms/token",
                  FormatBytes(engram_rows_->capacity_rows() * engram_rows_->row_bytes(0)).c_str(),
                  e.hit_rate() * 100.0, static_cast<double>(e.misses) * per_token,
                  static_cast<double>(e.bytes_read) / 1024 * per_token,
                  static_cast<double>(e.stall_ns) * 1e-6 * per_token);
  }
  return line;
}

}  // namespace strata::engine

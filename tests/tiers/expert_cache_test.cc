// The expert cache against the file's own bytes: every pin shows exactly the bundle's
// bytes in every mode (slots at the floor, all resident, mmap), backend and policy;
// a chunk demanding more experts than there are slots still completes (arrival order,
// slots recycled as pins are released); prefetched bundles count as used when
// demanded; cancelled hints leave the cache consistent; a permanent read error names
// the layer, expert and offset and the cache keeps working.
#include "tiers/expert_cache.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <thread>
#include <fstream>
#include <random>
#include <set>
#include <sstream>

#include "storage/gguf.h"
#include "tests/tiers/test_model.h"

namespace strata::tiers {
namespace {

constexpr uint32_t kTopK = 4;

struct Fixture {
  std::string path;
  std::string bytes;
  storage::GgufFile gguf;
};

const Fixture& Model() {
  static const Fixture* f = [] {
    auto* fx = new Fixture;
    fx->path = testing::TierTestModel("tiny");
    std::ifstream in(fx->path, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    fx->bytes = ss.str();
    auto g = storage::ReadGgufFile(fx->path);
    EXPECT_TRUE(g.ok());
    fx->gguf = std::move(g).value();
    return fx;
  }();
  return *f;
}

struct Opened {
  std::unique_ptr<RamBudget> budget;
  std::unique_ptr<ExpertCache> cache;
};

// A cache with `slots` cache slots (0: everything resident).
Opened Open(uint64_t slots, ExpertCacheOptions o) {
  const Fixture& f = Model();
  auto probe = PlanResidency(f.gguf, testing::Inputs(0, 0, kTopK, {}));
  EXPECT_TRUE(probe.ok());
  const uint64_t budget = slots ? probe->pinned_dense_bytes + slots * probe->slot_bytes : 0;
  auto plan = PlanResidency(f.gguf, testing::Inputs(budget, 0, kTopK, {}));
  EXPECT_TRUE(plan.ok()) << plan.status().ToString();
  Opened out;
  out.budget = std::make_unique<RamBudget>(budget);
  auto pinned = out.budget->Reserve(plan->pinned_dense_bytes, "pinned");
  EXPECT_TRUE(pinned.ok());
  auto cache = ExpertCache::Create(f.path, *plan, *out.budget, o);
  EXPECT_TRUE(cache.ok()) << cache.status().ToString();
  out.cache = std::move(cache).value();
  EXPECT_TRUE(out.cache->Preload({}).ok());
  if (budget) {
    EXPECT_LE(out.budget->used(), budget);
  }
  return out;
}

void ExpectBundleBytes(const ExpertCache& cache, uint32_t layer, const ExpertPin& pin) {
  const MoeLayer& L = *cache.plan().moe_layer(layer);
  const uint8_t* views[3] = {pin.view().gate, pin.view().up, pin.view().down};
  for (int role = 0; role < 3; ++role) {
    const storage::ByteRange r = L.segments[role].stack->ExpertRange(pin.expert());
    ASSERT_EQ(0, std::memcmp(views[role], Model().bytes.data() + r.offset, r.bytes))
        << "layer " << layer << " expert " << pin.expert() << " role " << role;
  }
}

// Demands `experts` of `layer`, checks every pin's bytes, and returns the arrival order.
std::vector<uint32_t> DemandAndCheck(ExpertCache& cache, uint32_t layer,
                                     const std::vector<int32_t>& experts) {
  cache.Demand(layer, experts);
  std::vector<uint32_t> got;
  for (size_t i = 0; i < experts.size(); ++i) {
    auto pin = cache.Next();
    EXPECT_TRUE(pin.ok()) << pin.status().ToString();
    if (!pin.ok()) continue;
    ExpectBundleBytes(cache, layer, *pin);
    got.push_back(pin->expert());
  }
  std::multiset<uint32_t> want(experts.begin(), experts.end());
  EXPECT_EQ(std::multiset<uint32_t>(got.begin(), got.end()), want);
  return got;
}

std::vector<int32_t> RandomExperts(std::mt19937& rng) {
  std::set<int32_t> s;
  while (s.size() < kTopK) s.insert(static_cast<int32_t>(rng() % 64));
  return {s.begin(), s.end()};
}

struct Mode {
  const char* name;
  uint64_t slots;
  storage::IoBackend backend;
  CachePolicy policy;
  bool mmap;
};

class ExpertCacheTest : public ::testing::TestWithParam<Mode> {};

TEST_P(ExpertCacheTest, EveryPinShowsTheFilesBytes) {
  const Mode m = GetParam();
  ExpertCacheOptions o;
  o.reader.backend = m.backend;
  o.reader.depth = 4;
  o.reader.faults = {
      .eio_every = 13, .short_every = 5, .flip_every = 31, .delay_every = 7, .delay_us = 100};
  o.verify = m.backend == storage::IoBackend::kFault;
  o.policy = m.policy;
  o.mmap = m.mmap;
  Opened c = Open(m.slots, o);
  std::mt19937 rng(3);
  for (int token = 0; token < 60; ++token) {
    for (uint32_t layer : {1u, 2u}) {
      // Hints for the next layer, as the prefetcher gives them.
      for (int32_t e : RandomExperts(rng)) c.cache->Prefetch(layer == 1 ? 2 : 1, uint32_t(e));
      DemandAndCheck(*c.cache, layer, RandomExperts(rng));
    }
    if (token % 7 == 0) c.cache->CancelPrefetches();
    c.cache->BeginToken();
  }
  const CacheStats s = c.cache->stats();
  EXPECT_EQ(s.demands, 60u * 2 * kTopK);
  EXPECT_EQ(s.hits + s.inflight_hits + s.misses, s.demands);
  EXPECT_LE(s.prefetch_used, s.prefetch_issued);
  if (m.slots && !m.mmap) {
    EXPECT_GT(s.misses, 0u);
    EXPECT_GT(s.bytes_read, 0u);
    EXPECT_LE(c.cache->resident_bytes(), m.slots * c.cache->plan().slot_bytes);
  } else {
    EXPECT_EQ(s.hits, s.demands);
  }
}

INSTANTIATE_TEST_SUITE_P(
    Modes, ExpertCacheTest,
    ::testing::Values(
        Mode{"floor_uring_lru", 8, storage::IoBackend::kUring, CachePolicy::kLru, false},
        Mode{"floor_pread_lfu", 8, storage::IoBackend::kPread, CachePolicy::kLfu, false},
        Mode{"half_fault_lru", 64, storage::IoBackend::kFault, CachePolicy::kLru, false},
        Mode{"all_resident", 0, storage::IoBackend::kUring, CachePolicy::kLru, false},
        Mode{"mmap", 8, storage::IoBackend::kUring, CachePolicy::kLru, true}),
    [](const auto& p) { return std::string(p.param.name); });

TEST(ExpertCache, AChunkNeedingMoreExpertsThanSlotsCompletes) {
  Opened c = Open(8, {});
  std::vector<int32_t> all(64);
  for (int32_t e = 0; e < 64; ++e) all[e] = e;
  DemandAndCheck(*c.cache, 1, all);
  DemandAndCheck(*c.cache, 2, all);
  EXPECT_EQ(c.cache->stats().misses, 128u);
}

TEST(ExpertCache, PrefetchedBundlesCountAsUsed) {
  Opened c = Open(16, {});
  EXPECT_TRUE(c.cache->Prefetch(1, 5));
  EXPECT_FALSE(c.cache->Prefetch(1, 5)) << "a bundle in flight is not fetched twice";
  DemandAndCheck(*c.cache, 1, {5, 6});
  const CacheStats s = c.cache->stats();
  EXPECT_EQ(s.prefetch_issued, 1u);
  EXPECT_EQ(s.prefetch_used, 1u);
  EXPECT_EQ(s.hits + s.inflight_hits, 1u);
  EXPECT_EQ(s.misses, 1u);
}

TEST(ExpertCache, HintsDoNotEvictWhatThisTokenUsed) {
  Opened c = Open(8, {});
  c.cache->BeginToken();
  DemandAndCheck(*c.cache, 1, {0, 1, 2, 3});
  DemandAndCheck(*c.cache, 2, {0, 1, 2, 3});
  // Every slot holds a bundle this token used: hints are refused.
  for (uint32_t e = 10; e < 20; ++e) EXPECT_FALSE(c.cache->Prefetch(1, e));
  c.cache->BeginToken();
  EXPECT_TRUE(c.cache->Prefetch(1, 10));
}

// Demands `experts` of `layer` one call, takes every pin and releases it.
void DemandAll(ExpertCache& cache, uint32_t layer, std::vector<int32_t> experts) {
  cache.Demand(layer, experts);
  for (size_t i = 0; i < experts.size(); ++i) ASSERT_TRUE(cache.Next().ok());
}

// Waits until `bytes` more have been read into slots (a prefetch landing).
void WaitForReads(const ExpertCache& cache, uint64_t since, uint64_t bytes) {
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (cache.stats().bytes_read < since + bytes) {
    ASSERT_LT(std::chrono::steady_clock::now(), until) << "the prefetch never landed";
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

TEST(ExpertCache, ADemandPinsItsHitsBeforeItsMissesEvict) {
  // 8 slots, filled in order 0..7 by single demands: under LRU, 0 is the victim.
  Opened c = Open(8, {});
  for (int32_t e = 0; e < 8; ++e) DemandAll(*c.cache, 1, {e});
  const CacheStats before = c.cache->stats();
  // The miss comes first in the call; it must not evict 0, which the call also wants.
  DemandAll(*c.cache, 1, {40, 0});
  const CacheStats d = c.cache->stats().Since(before);
  EXPECT_EQ(d.hits, 1u) << "expert 0 was cached when the call was made";
  EXPECT_EQ(d.misses, 1u);
  EXPECT_EQ(d.evictions, 1u);
}

TEST(ExpertCache, UnderLfuAPrefetchedBundleIsNotTheFirstVictim) {
  ExpertCacheOptions lfu;
  lfu.policy = CachePolicy::kLfu;
  Opened c = Open(8, lfu);
  for (int32_t e = 0; e < 7; ++e) DemandAll(*c.cache, 1, {e});  // counts 1, one slot free
  c.cache->BeginToken();
  const uint64_t read = c.cache->stats().bytes_read;
  ASSERT_TRUE(c.cache->Prefetch(1, 30));  // lands in the free slot, count 0
  WaitForReads(*c.cache, read, c.cache->plan().moe_layer(1)->bundle_bytes);
  DemandAll(*c.cache, 1, {41});  // a miss with every slot full
  const CacheStats before = c.cache->stats();
  DemandAll(*c.cache, 1, {30});
  const CacheStats d = c.cache->stats().Since(before);
  EXPECT_EQ(d.hits, 1u) << "the prefetched bundle survived until its use";
  EXPECT_EQ(c.cache->stats().prefetch_used, 1u);
}

TEST(ExpertCache, LfuCountsAgeSoAnOldFavouriteLeaves) {
  ExpertCacheOptions lfu;
  lfu.policy = CachePolicy::kLfu;
  Opened c = Open(8, lfu);
  const uint64_t slots = c.cache->plan().cache_slots;
  ASSERT_EQ(slots, 8u);
  for (int i = 0; i < 1000; ++i) DemandAll(*c.cache, 1, {0});  // hot long ago
  // Then seven others, round after round, for twelve ageing periods: 0's count halves
  // to nothing while theirs stay fresh (without ageing, 1000 would beat their ~100).
  const uint64_t demands = slots * ExpertCache::kLfuAgingSlots * 12;
  for (uint64_t i = 0; i < demands; ++i) DemandAll(*c.cache, 1, {static_cast<int32_t>(1 + i % 7)});
  DemandAll(*c.cache, 1, {50});  // a miss: the least counted goes
  const CacheStats before = c.cache->stats();
  DemandAll(*c.cache, 1, {3});
  EXPECT_EQ(c.cache->stats().Since(before).hits, 1u) << "a recently hot bundle stays";
  DemandAll(*c.cache, 1, {0});
  EXPECT_EQ(c.cache->stats().Since(before).misses, 1u) << "the old favourite was evicted";
}

TEST(ExpertCache, APermanentReadErrorNamesLayerExpertAndOffset) {
  const Fixture& f = Model();
  const auto* stack = f.gguf.FindTensor("blk.2.ffn_up_exps.weight");
  ASSERT_NE(stack, nullptr);
  ExpertCacheOptions o;
  o.reader.backend = storage::IoBackend::kFault;
  // The middle of the range: the aligned covers of its neighbours do not reach it.
  o.reader.faults.eio_always_at = stack->ExpertRange(9).offset + stack->expert_bytes() / 2;
  Opened c = Open(8, o);
  const std::vector<int32_t> want = {9};
  c.cache->Demand(2, want);
  auto pin = c.cache->Next();
  ASSERT_FALSE(pin.ok());
  const std::string msg = pin.status().message();
  EXPECT_EQ(pin.status().code(), StatusCode::kIOError);
  EXPECT_NE(msg.find("layer 2 expert 9"), std::string::npos) << msg;
  EXPECT_NE(msg.find(f.path), std::string::npos) << msg;
  EXPECT_NE(msg.find("offset " +
                     std::to_string(
                         f.gguf.FindTensor("blk.2.ffn_gate_exps.weight")->ExpertRange(9).offset)),
            std::string::npos)
      << msg;
  // Other bundles still load.
  DemandAndCheck(*c.cache, 2, {8, 10});
}

TEST(ExpertCache, BelowItsFloorTheBudgetRefusesTheSlots) {
  const Fixture& f = Model();
  auto plan = PlanResidency(f.gguf, testing::Inputs(32 << 20, 2 << 20, kTopK, {}));
  ASSERT_TRUE(plan.ok()) << plan.status().ToString();
  RamBudget budget(plan->pinned_dense_bytes + 1);  // the slots cannot be reserved
  auto cache = ExpertCache::Create(f.path, *plan, budget, {});
  ASSERT_FALSE(cache.ok());
  EXPECT_NE(cache.status().message().find("expert cache"), std::string::npos);
}

}  // namespace
}  // namespace strata::tiers

// Engram tables on disk: logits bit-identical to tables in RAM at several row-cache
// sizes and through every reader backend, faults on row reads recovered as for
// experts, a read that always fails reported with the table, row and offset, and the
// row cache's segmented LRU keeping a reused row through a scan of one-off rows.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <random>

#include "engine/session.h"
#include "engine/tiered_model.h"
#include "storage/async_reader.h"
#include "tests/tiers/test_model.h"
#include "tiers/engram_row_cache.h"

namespace strata::engine {
namespace {

using Trace = std::vector<std::vector<float>>;

struct EngramRun {
  std::string io = "uring";
  uint64_t engram_cache = 64 << 10;
  bool ram = false;  // tables (and everything else) in RAM
  std::optional<storage::FaultPlan> faults;
  bool pin_experts = false;  // only Engram rows come from disk
  unsigned threads = 2;
};

std::string Model(const std::string& module) {
  static std::map<std::string, std::string> paths;
  auto& path = paths[module];
  if (!path.empty()) return path;
  path = "/var/tmp/strata-tiers-" + std::to_string(::getpid()) + "-engram-" + module + ".gguf";
  tools::MakeModelOptions o;
  o.preset = "engram-tiny";
  o.output = path;
  o.experts = 64;
  o.engram_module = module;
  o.progress = false;
  auto r = tools::MakeModel(o);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return path;
}

EngramRun Ram() {
  EngramRun r;
  r.ram = true;
  return r;
}
EngramRun Disk(const std::string& io, uint64_t engram_cache = 64 << 10, unsigned threads = 2) {
  EngramRun r;
  r.io = io;
  r.engram_cache = engram_cache;
  r.threads = threads;
  return r;
}
// Experts pinned: every read that reaches the reader is an Engram row.
EngramRun Faulty(const storage::FaultPlan& plan) {
  EngramRun r;
  r.faults = plan;
  r.pin_experts = true;
  return r;
}

TierOptions OptionsFor(const std::string& path, const EngramRun& run) {
  TierOptions o;
  o.use_profile = false;
  o.engram_cache = run.engram_cache;
  if (run.io == "mmap") o.mmap = true;
  if (run.io == "pread") o.reader.backend = storage::IoBackend::kPread;
  if (run.faults) {
    o.reader.backend =
        run.io == "uring-fault" ? storage::IoBackend::kUringFault : storage::IoBackend::kFault;
    o.reader.faults = *run.faults;
  }
  if (!run.ram) {
    auto header = storage::ReadGgufFile(path);
    EXPECT_TRUE(header.ok());
    tiers::PlanInputs in = testing::Inputs(0, 0, 4, {});
    auto all = tiers::PlanResidency(*header, in);
    EXPECT_TRUE(all.ok());
    // Everything but the tables and half the routed experts; with pinned experts,
    // everything but the tables.
    const uint64_t tables = header->FindTensor("blk.1.engram_embd.weight")->bytes +
                            header->FindTensor("blk.2.engram_embd.weight")->bytes;
    const uint64_t experts = all->total_bundles * all->slot_bytes;
    o.ram_budget = all->pinned_dense_bytes - tables + run.engram_cache +
                   (run.pin_experts ? experts : experts / 2);
    if (run.pin_experts) o.pins = {"blk.*.ffn_*_exps.weight"};
  }
  return o;
}

Result<Trace> Generate(const std::string& path, const EngramRun& run,
                       tiers::EngramStats* stats = nullptr) {
  STRATA_ASSIGN_OR_RETURN(auto tm, TieredModel::Open(path, OptionsFor(path, run)));
  if (!run.ram && run.io != "mmap") {
    EXPECT_NE(tm->engram_rows(), nullptr) << "the tables should stay on disk";
    EXPECT_LE(tm->budget().used(), tm->effective_budget());
    // No silent fallback: the rows are read by the backend the run names.
    const std::string want = run.faults ? (run.io == "uring-fault" ? "uring-fault" : "fault")
                                        : run.io;
    if (tm->engram_rows()) {
      EXPECT_EQ(std::string(storage::IoBackendName(tm->engram_rows()->backend())), want);
    }
  }
  Session session(tm->model(), 256, storage::GgmlType::kF16, {.threads = run.threads});
  std::mt19937 rng(11);
  std::vector<int32_t> prompt(100);
  const uint32_t V = tm->model().config().n_vocab;
  // Repeated phrases, as in text: the same n-grams come back and hit the row cache.
  for (size_t i = 0; i < prompt.size(); ++i) {
    prompt[i] = i % 20 < 10 ? static_cast<int32_t>(rng() % V) : prompt[i - 10];
  }
  Trace trace;
  std::vector<float> logits;
  STRATA_RETURN_IF_ERROR(session.Eval(prompt, &logits, 32));
  trace.push_back(logits);
  for (int step = 0; step < 32; ++step) {
    const int32_t next =
        static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
    STRATA_RETURN_IF_ERROR(session.Eval({&next, 1}, &logits));
    trace.push_back(logits);
  }
  if (stats) *stats = tm->engram_stats();
  return trace;
}

void ExpectIdentical(const Trace& want, const Trace& got, const std::string& what) {
  ASSERT_EQ(want.size(), got.size()) << what;
  for (size_t i = 0; i < want.size(); ++i) {
    ASSERT_EQ(0, std::memcmp(want[i].data(), got[i].data(), want[i].size() * sizeof(float)))
        << what << ": logits differ at step " << i;
  }
}

TEST(EngramTiers, TablesOnDiskGiveIdenticalLogitsAtEveryRowCacheSize) {
  for (const char* module : {"v41", "demo"}) {
    const std::string path = Model(module);
    auto want = Generate(path, Ram());
    ASSERT_TRUE(want.ok()) << want.status().ToString();
    double small_hit = -1;
    // Each size with one backend, the smallest with both (the backends share the cache).
    const std::pair<uint64_t, const char*> runs[] = {{uint64_t{4} << 10, "uring"},
                                                     {uint64_t{4} << 10, "pread"},
                                                     {uint64_t{64} << 10, "uring"},
                                                     {uint64_t{1} << 20, "pread"}};
    for (const auto& [cache, io] : runs) {
      tiers::EngramStats stats;
      auto got = Generate(path, Disk(io, cache), &stats);
      const std::string what =
          std::string(module) + " io " + io + " engram cache " + std::to_string(cache);
      ASSERT_TRUE(got.ok()) << what << ": " << got.status().ToString();
      ExpectIdentical(*want, *got, what);
      EXPECT_GT(stats.misses, 0u) << what;
      EXPECT_EQ(stats.lookups, stats.hits + stats.inflight_hits + stats.misses) << what;
      if (cache == (uint64_t{4} << 10)) small_hit = stats.hit_rate();
      if (cache == (uint64_t{1} << 20)) {
        EXPECT_GT(stats.hit_rate(), small_hit) << what;
      }
    }
    if (std::string(module) != "v41") continue;  // mmap and -t 1 do not depend on the form
    auto mapped = Generate(path, Disk("mmap"));
    ASSERT_TRUE(mapped.ok());
    ExpectIdentical(*want, *mapped, std::string(module) + " mmap");
    auto one_thread = Generate(path, Disk("uring", 64 << 10, 1));
    ASSERT_TRUE(one_thread.ok());
    ExpectIdentical(*want, *one_thread, std::string(module) + " -t 1");
  }
}

TEST(EngramTiers, FaultsOnRowReadsAreRecovered) {
  const std::string path = Model("v41");
  auto want = Generate(path, Ram());
  ASSERT_TRUE(want.ok());
  // Only the tables come from disk, so every fault lands on a row read. Short reads
  // and delays are in the mix; EIO and flips also alone, at a higher rate.
  const storage::FaultPlan plans[] = {
      {.eio_every = 7},
      {.flip_every = 13},  // caught by reading each row until two reads agree
      {.eio_every = 11, .short_every = 2, .flip_every = 41, .delay_every = 3, .delay_us = 200},
  };
  for (const storage::FaultPlan& plan : plans) {
    auto got = Generate(path, Faulty(plan));
    ASSERT_TRUE(got.ok()) << got.status().ToString();
    ExpectIdentical(*want, *got,
                    "faults eio " + std::to_string(plan.eio_every) + " short " +
                        std::to_string(plan.short_every) + " flip " +
                        std::to_string(plan.flip_every));
  }
  // The same mix through io_uring's own completions, with EAGAIN and failed submits.
  EngramRun uring = Faulty({.eio_every = 11, .short_every = 2, .flip_every = 41, .delay_every = 3,
                            .delay_us = 200, .eagain_every = 5, .submit_fail_every = 3});
  uring.io = "uring-fault";
  auto got = Generate(path, uring);
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  ExpectIdentical(*want, *got, "uring-fault mix");
}

TEST(EngramTiers, ARowReadThatAlwaysFailsIsOneClearErrorAndKeepsThePosition) {
  const std::string path = Model("v41");
  const std::vector<int32_t> prompt = {1, 2, 3, 4};
  // The page holding the first row the first token reads from layer 1's table.
  auto header = storage::ReadGgufFile(path);
  ASSERT_TRUE(header.ok());
  auto config = Deepseek2Config::FromGguf(*header);
  ASSERT_TRUE(config.ok());
  prefetch::EngramHasher hasher(config->engram);
  std::vector<uint64_t> rows(hasher.rows_per_token());
  hasher.Next(prompt[0], true, rows);
  const uint64_t offset =
      header->FindTensor("blk.1.engram_embd.weight")->file_offset + rows[0] * 264;
  const EngramRun run = Faulty(storage::FaultPlan{.eio_always_at = offset});
  auto tm = TieredModel::Open(path, OptionsFor(path, run));
  ASSERT_TRUE(tm.ok()) << tm.status().ToString();
  Session session((*tm)->model(), 64, storage::GgmlType::kF16, {.threads = 2});
  std::vector<float> logits;
  const Status s = session.Eval(prompt, &logits);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("Engram table 'blk.1.engram_embd.weight' row"), std::string::npos)
      << s.ToString();
  EXPECT_NE(
      s.message().find("row " + std::to_string(rows[0]) + " at offset " + std::to_string(offset)),
      std::string::npos)
      << s.ToString();
  EXPECT_EQ(s.message().find('\n'), std::string::npos);
  EXPECT_EQ(session.n_past(), 0);
  // The cache gave every pinned row back: another attempt fails the same way, no hang.
  EXPECT_FALSE(session.Eval(prompt, &logits).ok());
}

// A file of 64 rows of 264 bytes, each row filled with its index.
void WriteRowFile(const std::string& path) {
  std::vector<uint8_t> data(64 * 264);
  for (size_t r = 0; r < 64; ++r) std::memset(&data[r * 264], static_cast<int>(r), 264);
  const int fd = ::open(path.c_str(), O_CREAT | O_TRUNC | O_WRONLY, 0644);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::write(fd, data.data(), data.size()), static_cast<ssize_t>(data.size()));
  ::close(fd);
}

TEST(EngramRowCache, SegmentedLruKeepsAReusedRowThroughAScan) {
  const std::string path = "/var/tmp/strata-tiers-" + std::to_string(::getpid()) + "-rows.bin";
  ASSERT_NO_FATAL_FAILURE(WriteRowFile(path));
  tiers::RamBudget budget(0);
  tiers::EngramCacheOptions o;
  o.capacity_bytes = 10 * 264;  // 10 rows: 2 on probation, 8 protected
  o.reader.backend = storage::IoBackend::kPread;
  auto cache = tiers::EngramRowCache::Create(path, {{"t", 0, 64, 264}}, budget, o);
  ASSERT_TRUE(cache.ok()) << cache.status().ToString();
  auto& c = **cache;
  uint8_t row[264];
  auto use = [&](uint64_t r) {
    const uint64_t ids[] = {r};
    ASSERT_TRUE(c.Request(0, ids).ok());
    ASSERT_TRUE(c.Take(0, r, row).ok());
    EXPECT_EQ(row[0], r);
    EXPECT_EQ(row[263], r);
  };
  use(7);
  use(7);                                     // a second use: protected
  for (uint64_t r = 20; r < 60; ++r) use(r);  // 40 one-off rows stream through probation
  const tiers::EngramStats before = c.stats();
  use(7);
  EXPECT_EQ(c.stats().Since(before).hits, 1u) << "the reused row was evicted by the scan";
  use(20);
  EXPECT_EQ(c.stats().Since(before).misses, 1u) << "a one-off row from the scan stayed";
  // A row beyond the table and more pinned rows than slots are refused.
  const uint64_t beyond[] = {64};
  EXPECT_FALSE(c.Request(0, beyond).ok());
  std::vector<uint64_t> many;
  for (uint64_t r = 0; r < 11; ++r) many.push_back(r);
  const Status full = c.Request(0, many);
  EXPECT_FALSE(full.ok());
  EXPECT_NE(full.message().find("--engram-cache"), std::string::npos);
  // The refusal pinned nothing: all ten slots can still be used.
  many.pop_back();
  ASSERT_TRUE(c.Request(0, many).ok());
  for (uint64_t r = 0; r < 10; ++r) EXPECT_TRUE(c.Take(0, r, row).ok());
  ::unlink(path.c_str());
}

// Clear empties the cache so every row is read again (bench --cold without reopening
// the model), keeps the counters, and refuses while a row is pinned.
TEST(EngramRowCache, ClearMakesEveryRowAMissAgainButNotWhileOneIsPinned) {
  const std::string path = "/var/tmp/strata-tiers-" + std::to_string(::getpid()) + "-clear.bin";
  ASSERT_NO_FATAL_FAILURE(WriteRowFile(path));
  tiers::RamBudget budget(0);
  tiers::EngramCacheOptions o;
  o.capacity_bytes = 8 * 264;
  o.reader.backend = storage::IoBackend::kPread;
  auto cache = tiers::EngramRowCache::Create(path, {{"t", 0, 64, 264}}, budget, o);
  ASSERT_TRUE(cache.ok()) << cache.status().ToString();
  auto& c = **cache;
  uint8_t row[264];
  const uint64_t ids[] = {3, 9, 3, 40};
  auto use_all = [&] {
    ASSERT_TRUE(c.Request(0, ids).ok());
    for (uint64_t r : ids) {
      ASSERT_TRUE(c.Take(0, r, row).ok());
      EXPECT_EQ(row[0], r);
      EXPECT_EQ(row[263], r);
    }
  };
  use_all();
  tiers::EngramStats before = c.stats();
  use_all();
  EXPECT_EQ(c.stats().Since(before).misses, 0u);
  ASSERT_TRUE(c.Request(0, std::span(ids, 1)).ok());
  const Status pinned = c.Clear();
  EXPECT_FALSE(pinned.ok());
  EXPECT_NE(pinned.message().find("1 rows are still pinned"), std::string::npos)
      << pinned.ToString();
  ASSERT_TRUE(c.Take(0, 3, row).ok());
  const uint64_t lookups = c.stats().lookups;
  ASSERT_TRUE(c.Clear().ok());
  EXPECT_EQ(c.stats().lookups, lookups) << "Clear keeps the counters";
  before = c.stats();
  use_all();
  EXPECT_EQ(c.stats().Since(before).misses, 3u) << "rows 3, 9 and 40 are read again";
  // Every slot is free exactly once: 8 rows pinned at once each keep their own bytes.
  ASSERT_TRUE(c.Clear().ok());
  const uint64_t eight[] = {50, 51, 52, 53, 54, 55, 56, 57};
  ASSERT_TRUE(c.Request(0, eight).ok());
  for (uint64_t r : eight) {
    ASSERT_TRUE(c.Take(0, r, row).ok());
    EXPECT_EQ(row[0], r);
  }
  ::unlink(path.c_str());
}

// With verify, a row is confirmed by any two reads that agree, not only two in a row:
// reads that are flipped every other time (clean, flipped, clean, ...) still confirm
// the clean bytes. A row no two of whose reads agree is one clear error.
TEST(EngramRowCache, VerifyAcceptsAnyTwoReadsThatAgree) {
  const std::string path = "/var/tmp/strata-tiers-" + std::to_string(::getpid()) + "-verify.bin";
  ASSERT_NO_FATAL_FAILURE(WriteRowFile(path));
  tiers::RamBudget budget(0);
  tiers::EngramCacheOptions o;
  o.capacity_bytes = 64 * 264;
  o.verify = true;
  o.max_inflight = 1;  // one read at a time, so the fault ordinals follow the rows
  o.reader.backend = storage::IoBackend::kFault;
  o.reader.direct = false;  // buffered: each read is the row itself, so every flip lands in it
  o.reader.faults = {.flip_every = 2};
  auto cache = tiers::EngramRowCache::Create(path, {{"t", 0, 64, 264}}, budget, o);
  ASSERT_TRUE(cache.ok()) << cache.status().ToString();
  uint8_t row[264];
  for (uint64_t r = 0; r < 64; ++r) {
    const uint64_t ids[] = {r};
    ASSERT_TRUE((*cache)->Request(0, ids).ok());
    const Status s = (*cache)->Take(0, r, row);
    ASSERT_TRUE(s.ok()) << "row " << r << ": " << s.ToString();
    for (uint8_t b : row) ASSERT_EQ(b, r) << "row " << r << " was confirmed with a flipped byte";
  }
  o.reader.faults = {.flip_every = 1};  // every read differs from every other
  cache.value().reset();
  cache = tiers::EngramRowCache::Create(path, {{"t", 0, 64, 264}}, budget, o);
  ASSERT_TRUE(cache.ok()) << cache.status().ToString();
  const uint64_t ids[] = {5};
  ASSERT_TRUE((*cache)->Request(0, ids).ok());
  const Status s = (*cache)->Take(0, 5, row);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("row 5 at offset 1320: no two of 6 reads agreed"), std::string::npos)
      << s.ToString();
  ::unlink(path.c_str());
}

// Direct reads need aligned blocks, but only as large as the drive's logical block (often
// 512 bytes, which statx reports): a 264-byte row costs one or two of those, not a page.
TEST(EngramRowCache, ReadsOnlyTheAlignedBlocksThatCoverARow) {
  const std::string path = "/var/tmp/strata-tiers-" + std::to_string(::getpid()) + "-cover.bin";
  ASSERT_NO_FATAL_FAILURE(WriteRowFile(path));
  const uint32_t direct = storage::DirectReadAlignment(path);
  EXPECT_EQ(direct & (direct - 1), 0u) << direct;
  EXPECT_LE(direct, 4096u);
  tiers::RamBudget budget(0);
  tiers::EngramCacheOptions o;
  o.capacity_bytes = 64 * 264;
  auto cache = tiers::EngramRowCache::Create(path, {{"t", 0, 64, 264}}, budget, o);
  ASSERT_TRUE(cache.ok()) << cache.status().ToString();
  auto& c = **cache;
  const uint64_t a = c.read_alignment();
  EXPECT_TRUE(a == direct || a == 1) << a;  // 1 where the filesystem refuses O_DIRECT
  uint64_t want = 0;
  uint8_t row[264];
  for (uint64_t r = 0; r < 64; ++r) {
    const uint64_t ids[] = {r};
    ASSERT_TRUE(c.Request(0, ids).ok());
    ASSERT_TRUE(c.Take(0, r, row).ok());
    ASSERT_EQ(row[0], r);
    ASSERT_EQ(row[263], r);
    const uint64_t off = r * 264;
    want += (off + 264 + a - 1) / a * a - off / a * a;
  }
  EXPECT_EQ(c.stats().misses, 64u);
  EXPECT_EQ(c.stats().bytes_read, want);
  if (a < 4096) {
    EXPECT_LT(c.stats().bytes_read, 64u * 4096);
  }
  ::unlink(path.c_str());
}

}  // namespace
}  // namespace strata::engine

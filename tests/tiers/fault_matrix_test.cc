// The fault matrix: every read path strata has today (pinned weights at load, an expert
// miss, a prefetch, a packed bundle read on a miss and on a prefetch), through both
// fault backends (the pread pool's and io_uring's own), with each fault they inject (a
// transient EIO, short reads, delays, flipped bytes; for io_uring also EAGAIN and
// failing submits) must
// give bit-identical logits within a bounded time; the same paths with a read that
// always fails must end in one clear error, with the session's position unchanged.
// (Engram row reads join with Engram. A flipped byte in a pinned tensor of a plain GGUF
// cannot be detected, since GGUF carries no checksums; see README.)
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>

#include "storage/pack_writer.h"
#include "tests/tiers/generate.h"
#include "tests/tiers/test_model.h"

namespace strata::engine {
namespace {

using namespace testing_generate;
using prefetch::PrefetchMode;

struct ReadPath {
  std::string name;
  bool packed;
  PrefetchMode prefetch;
};

struct Fault {
  std::string name;
  storage::FaultPlan plan;
};

const std::vector<ReadPath>& Paths() {
  static const std::vector<ReadPath> paths = {{"expert miss", false, PrefetchMode::kOff},
                                              {"prefetch", false, PrefetchMode::kRouter},
                                              {"packed bundle miss", true, PrefetchMode::kOff},
                                              {"packed bundle prefetch", true, PrefetchMode::kAll}};
  return paths;
}

const std::vector<Fault>& Faults() {
  static const std::vector<Fault> faults = {
      {"transient EIO", {.eio_every = 5}},
      {"short reads", {.short_every = 2}},
      {"delays", {.delay_every = 2, .delay_us = 400}},
      {"flipped bytes", {.flip_every = 31}},
  };
  return faults;
}

// The io_uring backend's own: EAGAIN completions and submits that fail.
const std::vector<Fault>& UringFaults() {
  static const std::vector<Fault> faults = {
      {"EAGAIN", {.eagain_every = 3}},
      {"failed submits", {.submit_fail_every = 2}},
  };
  return faults;
}

const std::vector<std::string>& FaultBackends() {
  static const std::vector<std::string> backends = {"fault", "uring-fault"};
  return backends;
}

std::string PackedModel() {
  const std::string in = testing::TierTestModel("tiny");
  const std::string out = in.substr(0, in.size() - 5) + ".matrix-packed.gguf";
  if (!std::filesystem::exists(out)) {
    storage::PackOptions o;
    o.codec = *storage::ParseCodecChoice("zstd:1");
    EXPECT_TRUE(storage::PackModel(in, out, o, nullptr).ok());
  }
  return out;
}

double Seconds(std::chrono::steady_clock::time_point since) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - since).count();
}

TEST(FaultMatrix, EveryReadPathSurvivesEveryTransientFaultWithIdenticalLogits) {
  const Trace want = Generate(testing::TierTestModel("tiny"), {});
  int cases = 0;
  for (const std::string& backend : FaultBackends()) {
    std::vector<Fault> faults = Faults();
    if (backend == "uring-fault") faults.insert(faults.end(), UringFaults().begin(), UringFaults().end());
    for (const ReadPath& path : Paths()) {
      const std::string model = path.packed ? PackedModel() : testing::TierTestModel("tiny");
      for (const Fault& fault : faults) {
        const std::string name = backend + ": " + path.name + " x " + fault.name;
        SCOPED_TRACE(name);
        Variant v{0.10, backend, path.prefetch, 2};
        v.faults = fault.plan;
        tiers::CacheStats stats;
        const auto start = std::chrono::steady_clock::now();
        ExpectIdentical(want, Generate(model, v, &stats), name);
        EXPECT_LT(Seconds(start), 60.0) << "no hang";
        EXPECT_GT(stats.misses, 0u);
        if (fault.name == "flipped bytes") {
          EXPECT_GT(stats.checksum_failures, 0u);
        }
        ++cases;
      }
    }
  }
  // Pinned weights, read at load through the same fault injector (EIO is retried by
  // the file reader; short reads are continued).
  for (const Fault& fault : Faults()) {
    if (fault.name == "flipped bytes") continue;  // undetectable without checksums
    SCOPED_TRACE("pinned load x " + fault.name);
    TierOptions o = OptionsFor(testing::TierTestModel("tiny"), {0.10});
    o.pinned_read = storage::FaultyPread(fault.plan);
    auto tm = TieredModel::Open(testing::TierTestModel("tiny"), o);
    ASSERT_TRUE(tm.ok()) << tm.status().ToString();
    Session s((*tm)->model(), 256, storage::GgmlType::kF16, {.threads = 2});
    std::vector<float> logits;
    ASSERT_TRUE(s.Eval(std::vector<int32_t>{1, 2, 3}, &logits).ok());
    auto plain = TieredModel::Open(testing::TierTestModel("tiny"),
                                   OptionsFor(testing::TierTestModel("tiny"), {0.10}));
    ASSERT_TRUE(plain.ok());
    Session p((*plain)->model(), 256, storage::GgmlType::kF16, {.threads = 2});
    std::vector<float> want_logits;
    ASSERT_TRUE(p.Eval(std::vector<int32_t>{1, 2, 3}, &want_logits).ok());
    EXPECT_EQ(logits, want_logits);
    ++cases;
  }
  std::printf("fault matrix: %d transient cases, all bit-identical\n", cases);
}

TEST(FaultMatrix, AReadThatAlwaysFailsIsOneClearErrorOnEveryPath) {
  for (const std::string& backend : FaultBackends()) {
    for (const ReadPath& path : Paths()) {
      SCOPED_TRACE(backend + ": " + path.name);
      const std::string model = path.packed ? PackedModel() : testing::TierTestModel("tiny");
      Variant v{0.10, backend, path.prefetch, 2};
      TierOptions o = OptionsFor(model, v);
      o.reader.faults = {.eio_every = 1};
      auto tm = TieredModel::Open(model, o);
      ASSERT_TRUE(tm.ok()) << tm.status().ToString();
      EXPECT_EQ(std::string(storage::IoBackendName((*tm)->cache().backend())), backend);
      Session s((*tm)->model(), 256, storage::GgmlType::kF16,
                         {.threads = 2, .prefetch = path.prefetch});
      std::vector<float> logits;
      const auto start = std::chrono::steady_clock::now();
      const Status st = s.Eval(std::vector<int32_t>{1, 2, 3, 4}, &logits);
      EXPECT_LT(Seconds(start), 60.0);
      ASSERT_FALSE(st.ok());
      EXPECT_EQ(st.code(), StatusCode::kIOError) << st.ToString();
      EXPECT_NE(st.message().find("expert"), std::string::npos) << st.message();
      EXPECT_NE(st.message().find(model), std::string::npos) << "names the file";
      EXPECT_EQ(s.n_past(), 0);
    }
  }
  // Pinned weights: the load fails with the file and the range.
  TierOptions o = OptionsFor(testing::TierTestModel("tiny"), {0.10});
  o.pinned_read = storage::FaultyPread({.eio_every = 1});
  auto tm = TieredModel::Open(testing::TierTestModel("tiny"), o);
  ASSERT_FALSE(tm.ok());
  EXPECT_EQ(tm.status().code(), StatusCode::kIOError);
  EXPECT_NE(tm.status().message().find("tried 3 times"), std::string::npos)
      << tm.status().message();
}

// A model file cut short while a run reads its experts (another process truncating it,
// a network filesystem losing the tail): the next expert read past the new end is one
// error naming the file, never zeros taken for weights, and the position is kept.
TEST(FaultMatrix, AModelFileCutShortMidRunIsOneErrorNamingIt) {
  const std::string path = "/var/tmp/strata-cut-" + std::to_string(::getpid()) + ".gguf";
  for (const char* io : {"uring", "pread"}) {
    SCOPED_TRACE(io);
    std::filesystem::copy_file(testing::TierTestModel("tiny"), path,
                               std::filesystem::copy_options::overwrite_existing);
    auto tm = TieredModel::Open(path, OptionsFor(path, {0.10, io, PrefetchMode::kOff, 2}));
    ASSERT_TRUE(tm.ok()) << tm.status().ToString();
    Session s((*tm)->model(), 256, storage::GgmlType::kF16,
                       {.threads = 2, .prefetch = PrefetchMode::kOff});
    std::vector<float> logits;
    ASSERT_TRUE(s.Eval(std::vector<int32_t>{1, 2, 3}, &logits).ok());
    // Cut the file where the first routed-expert stack starts.
    uint64_t cut = UINT64_MAX;
    for (const storage::TensorInfo& t : (*tm)->file().gguf().tensors()) {
      if (t.is_expert_stack()) cut = std::min(cut, t.file_offset);
    }
    ASSERT_LT(cut, UINT64_MAX);
    std::filesystem::resize_file(path, cut);
    // Enough new tokens that some expert is not cached and must be read.
    std::vector<int32_t> more(40);
    for (size_t i = 0; i < more.size(); ++i) more[i] = static_cast<int32_t>(7 + 13 * i % 200);
    const auto start = std::chrono::steady_clock::now();
    const Status st = s.Eval(more, &logits);
    EXPECT_LT(Seconds(start), 60.0);
    ASSERT_FALSE(st.ok());
    EXPECT_EQ(st.code(), StatusCode::kIOError) << st.ToString();
    EXPECT_NE(st.message().find(path), std::string::npos) << st.message();
    EXPECT_NE(st.message().find("ended early"), std::string::npos) << st.message();
    EXPECT_EQ(st.message().find('\n'), std::string::npos);
    EXPECT_EQ(s.n_past(), 3);
  }
  std::filesystem::remove(path);
}

}  // namespace
}  // namespace strata::engine

static ::testing::Environment* const kCleanup =
    ::testing::AddGlobalTestEnvironment(new strata::testing::TierTestModelCleanup);

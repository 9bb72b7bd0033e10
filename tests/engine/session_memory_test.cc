// The session's RAM estimate is an upper bound: every byte a session allocates (its KV
// state, scratch, thread-local buffers, the caller's logits), counted by replacing
// operator new for this test binary, stays within EstimateSessionMemory at the peak,
// for each architecture, at chunk sizes 1, 7 and the whole prompt, with the context
// filled. And the bound is not vacuous: it is within a small factor of what was used.
#include <malloc.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <new>

#include <gtest/gtest.h>

#include "engine/session.h"
#include "engine/session_memory.h"
#include "tools/make_model.h"
#include "util/size_parse.h"

namespace {

std::atomic<int64_t> g_live{0};
std::atomic<int64_t> g_peak{0};

void* Count(void* p) {
  if (!p) throw std::bad_alloc();
  const int64_t now = g_live.fetch_add(static_cast<int64_t>(malloc_usable_size(p))) +
                      static_cast<int64_t>(malloc_usable_size(p));
  int64_t peak = g_peak.load();
  while (now > peak && !g_peak.compare_exchange_weak(peak, now)) {
  }
  return p;
}

void Uncount(void* p) {
  if (p) g_live.fetch_sub(static_cast<int64_t>(malloc_usable_size(p)));
  std::free(p);
}

}  // namespace

void* operator new(size_t n) { return Count(std::malloc(n ? n : 1)); }
void* operator new[](size_t n) { return Count(std::malloc(n ? n : 1)); }
void* operator new(size_t n, std::align_val_t a) {
  return Count(std::aligned_alloc(static_cast<size_t>(a), (n + static_cast<size_t>(a) - 1) /
                                                             static_cast<size_t>(a) *
                                                             static_cast<size_t>(a)));
}
void* operator new[](size_t n, std::align_val_t a) { return operator new(n, a); }
void operator delete(void* p) noexcept { Uncount(p); }
void operator delete[](void* p) noexcept { Uncount(p); }
void operator delete(void* p, size_t) noexcept { Uncount(p); }
void operator delete[](void* p, size_t) noexcept { Uncount(p); }
void operator delete(void* p, std::align_val_t) noexcept { Uncount(p); }
void operator delete[](void* p, std::align_val_t) noexcept { Uncount(p); }
void operator delete(void* p, size_t, std::align_val_t) noexcept { Uncount(p); }
void operator delete[](void* p, size_t, std::align_val_t) noexcept { Uncount(p); }

namespace strata::engine {
namespace {

std::string MakeModelFile(const std::string& preset) {
  const std::string path = (std::filesystem::temp_directory_path() /
                            ("strata-mem-" + std::to_string(::getpid()) + "-" + preset + ".gguf"))
                               .string();
  if (std::filesystem::exists(path)) return path;
  tools::MakeModelOptions o;
  o.preset = preset;
  o.output = path;
  o.tokenizer = "none";
  o.progress = false;
  auto r = tools::MakeModel(o);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return path;
}

struct Case {
  const char* preset;
  uint32_t n_ctx;
  int64_t batch;
};

class SessionMemoryTest : public ::testing::TestWithParam<Case> {};

TEST_P(SessionMemoryTest, EveryAllocationStaysWithinTheEstimate) {
  const Case c = GetParam();
  const std::string path = MakeModelFile(c.preset);
  auto file = ModelFile::Open(path);
  ASSERT_TRUE(file.ok()) << file.status().ToString();
  auto model = DeepseekModel::Load(std::move(*file));
  ASSERT_TRUE(model.ok()) << model.status().ToString();
  const Deepseek2Config& config = (*model)->config();
  const SessionShape shape{c.n_ctx, c.batch, storage::GgmlType::kF16, 2};
  const SessionMemory estimate = EstimateSessionMemory(config, shape);

  std::vector<int32_t> prompt(c.n_ctx - 1);
  for (size_t i = 0; i < prompt.size(); ++i) prompt[i] = static_cast<int32_t>(3 + i * 7 % 200);
  const int64_t before = g_live.load();
  g_peak.store(before);
  {
    Session session(**model, c.n_ctx, shape.kv_type, {.threads = shape.threads});
    std::vector<float> logits;
    ASSERT_TRUE(session.Eval(prompt, &logits, c.batch).ok());
    ASSERT_TRUE(session.Eval({{5}}, &logits, c.batch).ok());  // the context is now full
  }
  const int64_t used = g_peak.load() - before;
  SCOPED_TRACE(std::string(c.preset) + " " + DescribeSession(shape, estimate) + ", measured " +
               FormatBytes(static_cast<uint64_t>(used)));
  EXPECT_LE(used, static_cast<int64_t>(estimate.total()));
  EXPECT_GE(used * 4 + (1 << 20), static_cast<int64_t>(estimate.total()))
      << "the estimate is so loose that it would waste the budget";
}

INSTANTIATE_TEST_SUITE_P(
    Presets, SessionMemoryTest,
    ::testing::Values(Case{"tiny", 300, 1}, Case{"tiny", 300, 7}, Case{"tiny", 300, 512},
                      Case{"v4-tiny", 600, 1}, Case{"v4-tiny", 600, 7}, Case{"v4-tiny", 600, 512},
                      Case{"engram-tiny", 300, 7}, Case{"engram-tiny", 300, 512},
                      Case{"small", 256, 256}),
    [](const auto& p) {
      std::string name = std::string(p.param.preset) + "_b" + std::to_string(p.param.batch);
      for (char& ch : name) ch = std::isalnum(static_cast<unsigned char>(ch)) ? ch : '_';
      return name;
    });

}  // namespace
}  // namespace strata::engine

// The prompt cache on disk (server/prompt_store.h): the longest stored prefix is
// found, across a restart too; a damaged entry is deleted and never loaded; the byte
// budget evicts the least recently used; other models' entries are left alone; no
// temporary file stays behind. And with a scheduler: a restarted server's answer
// after a prefix loaded from disk is bit for bit the answer of a cold prefill.
#include "server/prompt_store.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "engine/tiered_model.h"
#include "engine/tokenizer/tokenizer.h"
#include "gtest/gtest.h"
#include "server/answer.h"
#include "server/prompt.h"
#include "server/scheduler.h"
#include "tests/server/test_model.h"

namespace strata::server {
namespace {

namespace fs = std::filesystem;

class PromptStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("strata-prompt-store-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::unique_ptr<PromptStore> Open(uint64_t budget = 1 << 20, uint64_t key = 42) {
    auto s = PromptStore::Open({.dir = dir_.string(), .max_bytes = budget, .model_key = key});
    EXPECT_TRUE(s.ok()) << s.status().ToString();
    return std::move(s).value();
  }
  size_t Files(const std::string& needle = "") const {
    size_t n = 0;
    for (const auto& e : fs::directory_iterator(dir_)) {
      n += e.path().filename().string().find(needle) != std::string::npos;
    }
    return n;
  }
  fs::path dir_;
};

std::vector<int32_t> Tokens(int n, int salt = 0) {
  std::vector<int32_t> t;
  for (int i = 0; i < n; ++i) t.push_back(i * 7 + salt);
  return t;
}

std::vector<uint8_t> State(size_t n, uint8_t fill) { return std::vector<uint8_t>(n, fill); }

TEST_F(PromptStoreTest, FindsTheLongestStoredPrefixAcrossARestart) {
  {
    auto store = Open();
    store->Put(Tokens(10), State(100, 1));
    store->Flush();
    store->Put(Tokens(30), State(300, 3));
    store->Put(Tokens(20, 5), State(200, 2));  // another sequence
    store->Flush();
    EXPECT_EQ(store->stats().entries, 3u);
    EXPECT_EQ(store->stats().skipped, 0u);
    EXPECT_TRUE(store->Contains(Tokens(30)));
    EXPECT_FALSE(store->Contains(Tokens(29)));
  }
  auto store = Open();  // a restarted server
  EXPECT_EQ(store->stats().entries, 3u);
  const std::vector<int32_t> prompt = Tokens(50);
  auto hit = store->Find(prompt, 0, prompt.size() - 1);
  ASSERT_TRUE(hit);
  EXPECT_EQ(hit->tokens, 30u);
  EXPECT_EQ(hit->state, State(300, 3));
  // Bounds: nothing longer than `at_most`, nothing not longer than `more_than`.
  hit = store->Find(prompt, 0, 29);
  ASSERT_TRUE(hit);
  EXPECT_EQ(hit->tokens, 10u);
  EXPECT_FALSE(store->Find(prompt, 30, 49));
  EXPECT_FALSE(store->Find(Tokens(50, 1), 0, 49));  // no stored prefix
  EXPECT_EQ(store->stats().hits, 2u);
  EXPECT_EQ(store->stats().misses, 2u);
  EXPECT_EQ(Files(".tmp."), 0u);
}

TEST_F(PromptStoreTest, ADamagedEntryIsDeletedNotLoaded) {
  auto store = Open();
  store->Put(Tokens(10), State(100, 1));
  store->Put(Tokens(20), State(200, 2));
  store->Flush();
  ASSERT_EQ(store->stats().entries, 2u);
  // Flip one byte of the longer entry's state.
  for (const auto& e : fs::directory_iterator(dir_)) {
    if (fs::file_size(e.path()) < 56 + 20 * 4 + 200) continue;
    std::fstream f(e.path(), std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(-7, std::ios::end);
    f.put('\x7f');
  }
  auto hit = store->Find(Tokens(40), 0, 39);
  ASSERT_TRUE(hit);
  EXPECT_EQ(hit->tokens, 10u) << "the damaged longer entry must not be used";
  EXPECT_EQ(store->stats().bad_files, 1u);
  EXPECT_EQ(store->stats().entries, 1u);
  EXPECT_EQ(Files(".strata-prompt"), 1u);
  // A truncated file is dropped when the next server indexes the directory.
  for (const auto& e : fs::directory_iterator(dir_)) fs::resize_file(e.path(), 60);
  store.reset();
  store = Open();
  EXPECT_EQ(store->stats().entries, 0u);
  EXPECT_EQ(store->stats().bad_files, 1u);
  EXPECT_EQ(Files(), 0u);
}

TEST_F(PromptStoreTest, TheBudgetEvictsTheLeastRecentlyUsed) {
  const uint64_t entry = 56 + 10 * 4 + 1000;  // header, tokens, state
  auto store = Open(3 * entry);
  for (int i = 0; i < 3; ++i) {
    store->Put(Tokens(10, 100 * i), State(1000, static_cast<uint8_t>(i)));
    store->Flush();
  }
  ASSERT_TRUE(store->Find(Tokens(11, 0), 0, 10));  // the oldest, now the most recent
  store->Put(Tokens(10, 300), State(1000, 3));
  store->Flush();
  EXPECT_EQ(store->stats().entries, 3u);
  EXPECT_EQ(store->stats().evictions, 1u);
  EXPECT_TRUE(store->Contains(Tokens(10, 0)));
  EXPECT_FALSE(store->Contains(Tokens(10, 100))) << "the least recently used goes first";
  store->Put(Tokens(10, 400), State(10 * entry, 4));  // alone larger than the budget
  store->Flush();
  EXPECT_FALSE(store->Contains(Tokens(10, 400)));
  // A smaller budget next time evicts down to it, oldest first.
  store.reset();
  store = Open(entry);
  EXPECT_EQ(store->stats().entries, 1u);
  EXPECT_TRUE(store->Contains(Tokens(10, 300)));
}

TEST_F(PromptStoreTest, OtherModelsEntriesAreLeftAlone) {
  auto a = Open(1 << 20, 1);
  a->Put(Tokens(10), State(100, 1));
  a->Flush();
  auto b = Open(1, 2);  // another model, a budget that holds nothing
  EXPECT_FALSE(b->Find(Tokens(20), 0, 19));
  b->Put(Tokens(10), State(100, 2));
  b->Flush();
  EXPECT_EQ(b->stats().entries, 0u);
  EXPECT_TRUE(a->Find(Tokens(20), 0, 19)) << "model 2's budget must not evict model 1's entry";
}

TEST_F(PromptStoreTest, ADirectoryThatCannotBeCreatedIsAnError) {
  std::ofstream(dir_.string()) << "a file";
  auto s = PromptStore::Open({.dir = (dir_ / "sub").string(), .max_bytes = 1, .model_key = 1});
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("--prompt-cache-dir"), std::string::npos);
  fs::remove(dir_);
}

class StoredPrefix : public ::testing::TestWithParam<std::string> {};

// A server answers a prompt and stores what its slot holds (prompt and answer); a
// restarted one (a new model, store and scheduler) gets a prompt that continues it,
// loads the stored prefix from disk and prefills only the rest: its answer is exactly
// a cold server's.
TEST_P(StoredPrefix, ARestartedServerAnswersAsAColdOne) {
  const std::string path = testing::ServerTestModel(GetParam());
  const fs::path dir =
      fs::temp_directory_path() / ("strata-stored-prefix-" + std::to_string(::getpid()) + GetParam());
  fs::remove_all(dir);
  GenerationRequest r;
  r.api = Api::kCompletion;
  r.max_tokens = 8;
  r.sampling.temp = 0;
  struct Run {
    std::string text;
    GenerationResult result;
    std::vector<int32_t> held;
    uint64_t loaded = 0;
  };
  auto run = [&](const std::vector<int32_t>& prompt, bool with_store) {
    Run out;
    auto model = engine::TieredModel::Open(path, engine::TierOptions{});
    EXPECT_TRUE(model.ok());
    auto tokenizer = engine::Tokenizer::FromGguf((*model)->model().file().gguf());
    std::unique_ptr<PromptStore> store;
    if (with_store) {
      const engine::ModelFile& file = (*model)->model().file();
      const uint64_t key = PromptStoreModelKey(
          file.gguf(), [&](const std::string& name) { return file.Data(name); },
          storage::GgmlType::kF16);
      auto opened = PromptStore::Open({.dir = dir.string(), .max_bytes = 1ull << 30, .model_key = key});
      EXPECT_TRUE(opened.ok());
      store = std::move(opened).value();
    }
    SchedulerOptions o;
    o.n_ctx = 512;
    o.batch = 16;
    o.session.threads = 2;
    o.eos = (*tokenizer)->eos();
    o.store = store.get();
    o.store_min_tokens = 1;
    {
      Scheduler scheduler(**model, o);
      auto g = std::make_shared<Generation>(prompt, r.sampling, r.max_tokens, true);
      EXPECT_TRUE(scheduler.Submit(g).ok());
      EXPECT_TRUE(StreamAnswer(*g, r, **tokenizer, false,
                               [&](std::string_view t, bool) {
                                 out.text += t;
                                 return true;
                               },
                               [] { return true; }, &out.result)
                      .ok());
      out.held = scheduler.Held(0);
      out.loaded = scheduler.stats().loaded_tokens;
    }
    if (store) store->Flush();
    return out;
  };
  std::vector<int32_t> prompt;
  for (int i = 0; i < 120; ++i) prompt.push_back(32 + (i * 37) % 90);
  const Run first = run(prompt, true);
  EXPECT_EQ(first.result.cached_tokens, 0);
  ASSERT_EQ(first.held.size(), prompt.size() + 7) << "the prompt and all but the last answer token";
  std::vector<int32_t> next = first.held;
  for (int i = 0; i < 10; ++i) next.push_back(40 + i);
  const Run restarted = run(next, true);
  const Run cold = run(next, false);
  EXPECT_EQ(restarted.text, cold.text);
  EXPECT_EQ(restarted.held, cold.held);
  EXPECT_EQ(cold.result.cached_tokens, 0);
  EXPECT_EQ(restarted.result.cached_tokens, static_cast<int32_t>(first.held.size()));
  EXPECT_EQ(restarted.loaded, first.held.size());
  fs::remove_all(dir);
}

INSTANTIATE_TEST_SUITE_P(Presets, StoredPrefix, ::testing::Values("tiny", "v4-tiny"),
                         [](const auto& p) {
                           std::string name = p.param;
                           std::replace(name.begin(), name.end(), '-', '_');
                           return name;
                         });

}  // namespace
}  // namespace strata::server

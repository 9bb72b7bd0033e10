// Real third-party GGUFs: llama.cpp's vocabulary-only test files (cached by
// scripts/setup.sh from the npm package node-llama-cpp). Every one must parse, and
// inspect's verdict must describe it without error.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>

#include "storage/gguf.h"
#include "tools/inspect.h"
#include "util/cache_dir.h"
#include "tests/skip_or_fail.h"

namespace strata::storage {
namespace {

std::filesystem::path VocabDir() { return std::filesystem::path(CacheDir()) / "llama-vocab"; }

std::vector<std::filesystem::path> VocabFiles() {
  std::vector<std::filesystem::path> files;
  if (!std::filesystem::exists(VocabDir())) return files;
  for (const auto& e : std::filesystem::directory_iterator(VocabDir())) {
    if (e.path().extension() == ".gguf") files.push_back(e.path());
  }
  std::sort(files.begin(), files.end());
  return files;
}

TEST(RealGguf, EveryLlamaCppVocabFileParsesAndInspects) {
  const auto files = VocabFiles();
  if (files.empty()) {
    STRATA_SKIP_OR_FAIL("no vocab GGUFs in " << VocabDir() << " (run scripts/setup.sh)");
  }
  EXPECT_GE(files.size(), 15u);
  for (const auto& path : files) {
    auto parsed = ReadGgufFile(path.string());
    ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
    const GgufFile& f = *parsed;
    EXPECT_TRUE(f.version() == 2 || f.version() == 3) << path;
    const GgufValue* tokens = f.Find("tokenizer.ggml.tokens");
    ASSERT_NE(tokens, nullptr) << path;
    EXPECT_GT(tokens->items().size(), 1000u) << path;
    EXPECT_TRUE(f.Find("general.architecture")) << path;
    const tools::Verdict v = tools::CheckRunnable(f);
    EXPECT_FALSE(v.runnable) << path;  // vocabulary-only: nothing to run, and it says so
    EXPECT_NE(v.text.find("no tensors"), std::string::npos) << v.text;
  }
}

TEST(RealGguf, DeepseekLlmVocabHasTheExpectedTokenizer) {
  const auto path = VocabDir() / "ggml-vocab-deepseek-llm.gguf";
  if (!std::filesystem::exists(path)) {
    STRATA_SKIP_OR_FAIL(path << " missing (run scripts/setup.sh)");
  }
  auto f = ReadGgufFile(path.string());
  ASSERT_TRUE(f.ok()) << f.status().ToString();
  EXPECT_EQ(*f->GetString("tokenizer.ggml.model"), "gpt2");
  EXPECT_EQ(*f->GetString("tokenizer.ggml.pre"), "deepseek-llm");
  EXPECT_GT(f->Find("tokenizer.ggml.merges")->items().size(), 50000u);
}

}  // namespace
}  // namespace strata::storage

// The DeepSeek-V3 tokenizer for tests: its tokenizer.json (cached by scripts/setup.sh)
// turned into GGUF metadata and loaded as strata loads a model's vocabulary. Null
// when the fixture is not cached (callers skip, or fail under STRATA_REQUIRE_FIXTURES).
#pragma once

#include <unistd.h>

#include <filesystem>
#include <memory>
#include <string>

#include "engine/gguf_vocab.h"
#include "engine/tokenizer/tokenizer.h"
#include "gtest/gtest.h"
#include "storage/gguf.h"
#include "storage/gguf_writer.h"
#include "util/cache_dir.h"

namespace strata::testing {

inline std::unique_ptr<engine::Tokenizer> LoadDeepseekV3Tokenizer() {
  const auto json = std::filesystem::path(CacheDir()) / "deepseek-v3" / "tokenizer.json";
  if (!std::filesystem::exists(json)) return nullptr;
  auto vocab = engine::VocabFromHfTokenizer(json.string(), 129280);
  EXPECT_TRUE(vocab.ok()) << vocab.status().ToString();
  if (!vocab.ok()) return nullptr;
  const std::string path = (std::filesystem::temp_directory_path() /
                            ("strata-v3-vocab-" + std::to_string(::getpid()) + ".gguf"))
                               .string();
  storage::GgufWriter writer;
  writer.AddMetadata("general.architecture", storage::GgufValue::String("deepseek2"));
  vocab->WriteMetadata(writer);
  EXPECT_TRUE(writer.WriteTo(path).ok());
  auto file = storage::ReadGgufFile(path);
  std::filesystem::remove(path);
  EXPECT_TRUE(file.ok());
  if (!file.ok()) return nullptr;
  auto t = engine::Tokenizer::FromGguf(*file);
  EXPECT_TRUE(t.ok());
  return t.ok() ? std::move(*t) : nullptr;
}

}  // namespace strata::testing

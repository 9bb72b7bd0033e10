// The tokenizer.json -> tokenizer.ggml.* conversion, on the real DeepSeek-V3 tokenizer
// when scripts/setup.sh has cached it, and the labelled fallback vocabulary.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "engine/gguf_vocab.h"
#include "tools/make_model.h"
#include "tests/skip_or_fail.h"

namespace strata::engine {
namespace {

TEST(ByteToUnicode, Gpt2Spelling) {
  EXPECT_EQ(ByteToUnicode('a'), "a");
  EXPECT_EQ(ByteToUnicode(' '), "\xC4\xA0");   // U+0120 'Ġ'
  EXPECT_EQ(ByteToUnicode('\n'), "\xC4\x8A");  // U+010A 'Ċ'
  EXPECT_EQ(ByteToUnicode(0), "\xC4\x80");     // U+0100
  EXPECT_EQ(ByteToUnicode(0xAD), "\xC5\x83");  // U+0143, the last remapped byte
}

TEST(FallbackVocab, IsLabelledAndComplete) {
  GgufVocab v = FallbackByteVocab();
  EXPECT_EQ(v.source, "fallback-bytes");
  EXPECT_EQ(v.tokens.size(), 262u);
  EXPECT_EQ(v.tokens[v.bos_id], "<｜begin▁of▁sentence｜>");
  EXPECT_EQ(v.tokens[v.eos_id], "<｜end▁of▁sentence｜>");
  EXPECT_EQ(v.token_types[v.bos_id], static_cast<int32_t>(TokenType::kControl));
}

TEST(HfTokenizer, RealDeepseekV3) {
  const std::string path = tools::DefaultTokenizerPath();
  if (path.empty()) {
    STRATA_SKIP_OR_FAIL("DeepSeek-V3 tokenizer not cached (run scripts/setup.sh)");
  }
  auto v = VocabFromHfTokenizer(path, 129280);
  ASSERT_TRUE(v.ok()) << v.status().ToString();
  EXPECT_EQ(v->tokens.size(), 129280u);
  EXPECT_EQ(v->merges.size(), 127741u);
  EXPECT_EQ(v->bos_id, 0u);
  EXPECT_EQ(v->eos_id, 1u);
  EXPECT_EQ(v->tokens[0], "<｜begin▁of▁sentence｜>");
  EXPECT_EQ(v->token_types[0], static_cast<int32_t>(TokenType::kControl));
  EXPECT_EQ(v->tokens[128815], "[PAD128815]");
  EXPECT_EQ(v->token_types[128815], static_cast<int32_t>(TokenType::kUnused));
  EXPECT_NE(v->chat_template.find("<｜Assistant｜>"), std::string::npos);
  EXPECT_TRUE(v->add_bos);
}

TEST(HfTokenizer, BadFilesGiveOneLineErrors) {
  const auto dir = std::filesystem::temp_directory_path() / ("vocab-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const auto bad = (dir / "tokenizer.json").string();
  { std::ofstream(bad) << "{\"model\": {\"type\": \"BPE\", \"vocab\": "; }
  auto r = VocabFromHfTokenizer(bad, 0);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find(bad), std::string::npos);
  { std::ofstream(bad) << R"({"model": {"type": "Unigram"}})"; }
  r = VocabFromHfTokenizer(bad, 0);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("not BPE"), std::string::npos);
  EXPECT_EQ(VocabFromHfTokenizer((dir / "missing.json").string(), 0).status().code(),
            StatusCode::kNotFound);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace strata::engine

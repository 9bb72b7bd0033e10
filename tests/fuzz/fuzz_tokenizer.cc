// libFuzzer target: arbitrary bytes as text for the tokenizer, with the DeepSeek-V3
// vocabulary when the fixtures are cached (scripts/setup.sh), else the byte fallback.
// Every id must be in the vocabulary; for valid UTF-8 read without special tokens,
// decoding gives the text back, and the streaming decoder agrees with Decode.
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>

#include "engine/gguf_vocab.h"
#include "engine/tokenizer/tokenizer.h"
#include "storage/gguf.h"
#include "storage/gguf_writer.h"
#include "util/cache_dir.h"
#include "util/utf8.h"

namespace {

std::unique_ptr<strata::engine::Tokenizer> g_tokenizer;

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  using namespace strata;
  const std::string json = CacheDir() + "/deepseek-v3/tokenizer.json";
  auto vocab = std::filesystem::exists(json)
                   ? engine::VocabFromHfTokenizer(json, 0)
                   : Result<engine::GgufVocab>(engine::FallbackByteVocab());
  if (!vocab.ok()) vocab = engine::FallbackByteVocab();
  storage::GgufWriter writer;
  writer.AddMetadata("general.architecture", storage::GgufValue::String("deepseek2"));
  vocab->WriteMetadata(writer);
  const std::string path = "/tmp/strata-fuzz-tokenizer-" + std::to_string(::getpid()) + ".gguf";
  if (!writer.WriteTo(path).ok()) abort();
  auto gguf = storage::ReadGgufFile(path);
  std::filesystem::remove(path);
  if (!gguf.ok()) abort();
  auto tok = engine::Tokenizer::FromGguf(*gguf);
  if (!tok.ok()) abort();
  g_tokenizer = std::move(tok).value();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const bool special = data[0] & 1;
  const std::string_view text(reinterpret_cast<const char*>(data) + 1, size - 1);
  const auto ids = g_tokenizer->Encode(text, false, special);
  for (int32_t id : ids) {
    if (id < 0 || id >= g_tokenizer->n_vocab()) abort();
  }
  const std::string decoded = g_tokenizer->Decode(ids);
  strata::engine::StreamingDecoder stream(*g_tokenizer);
  std::string streamed;
  for (int32_t id : ids) streamed += stream.Push(id);
  streamed += stream.Flush();
  if (!strata::IsValidUtf8(streamed)) abort();  // never a broken sequence on screen
  if (!special && strata::IsValidUtf8(text)) {
    if (decoded != text) abort();
    if (streamed != text) abort();
  }
  return 0;
}

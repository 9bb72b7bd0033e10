// A tokenizer vocabulary as GGUF stores it (tokenizer.ggml.* keys, docs/GGUF.md §1), built
// either from a Hugging Face tokenizer.json (byte-level BPE, e.g. DeepSeek-V3's) or as
// a clearly labelled fallback of 256 byte tokens plus the DeepSeek control tokens.
// Value type; thread-compatible.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "util/status.h"

namespace strata::storage {
class GgufWriter;
}

namespace strata::engine {

// llama.cpp's token types (gguf TokenType).
enum class TokenType : int32_t {
  kNormal = 1,
  kUnknown = 2,
  kControl = 3,
  kUserDefined = 4,
  kUnused = 5,
  kByte = 6,
};

struct GgufVocab {
  std::string model = "gpt2";
  std::string pre = "deepseek-v3";
  std::vector<std::string> tokens;
  std::vector<int32_t> token_types;
  std::vector<std::string> merges;  // "a b"
  uint32_t bos_id = 0;
  uint32_t eos_id = 1;
  uint32_t pad_id = 1;
  bool add_bos = true;
  bool add_eos = false;
  std::string chat_template;  // empty: not written
  std::string source;         // "tokenizer.json: <path>" or "fallback-bytes"

  void WriteMetadata(storage::GgufWriter& writer) const;
};

// Reads `tokenizer_json` (and `tokenizer_config.json` beside it, for the chat template
// and BOS/EOS). Ids missing from the file up to `pad_to` become "[PAD<id>]" unused
// tokens, as llama.cpp's converter writes them. Errors name the file and the field.
Result<GgufVocab> VocabFromHfTokenizer(const std::string& tokenizer_json, uint32_t pad_to);

// 256 byte tokens (GPT-2 byte-to-unicode spelling) and the DeepSeek control tokens.
GgufVocab FallbackByteVocab();

// GPT-2's printable spelling of byte `b` in byte-level BPE vocabularies, as UTF-8.
std::string ByteToUnicode(uint8_t b);

}  // namespace strata::engine

// Byte-level BPE tokenizer built from a GGUF's tokenizer.ggml.* metadata, with the
// llama.cpp pre-tokenizers deepseek-v3, deepseek-llm, deepseek-coder, gpt2 (gpt-2,
// mpt), starcoder (refact, command-r), llama-bpe and qwen2: each is the regex list
// llama.cpp uses, run by engine/tokenizer/regex.h.
// Special tokens (control and user-defined) are matched literally before
// pre-tokenisation. Encode is O(text * merges per word); the object is immutable
// after construction and thread-safe.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "engine/tokenizer/regex.h"
#include "storage/gguf.h"
#include "util/status.h"

namespace strata::engine {

class Tokenizer {
 public:
  static Result<std::unique_ptr<Tokenizer>> FromGguf(const storage::GgufFile& file);

  // add_bos: prepend BOS when the model asks for it (tokenizer.ggml.add_bos_token).
  // parse_special: recognise control tokens written in the text ("<｜User｜>").
  std::vector<int32_t> Encode(std::string_view text, bool add_bos, bool parse_special) const;

  // The bytes a token stands for; control tokens give their text only if
  // `render_special`.
  std::string TokenBytes(int32_t id, bool render_special = false) const;
  std::string Decode(std::span<const int32_t> ids, bool render_special = false) const;

  int32_t n_vocab() const { return static_cast<int32_t>(tokens_.size()); }
  int32_t bos() const { return bos_; }
  int32_t eos() const { return eos_; }
  bool add_bos() const { return add_bos_; }
  const std::string& pre() const { return pre_; }
  const std::string& token_text(int32_t id) const { return tokens_[static_cast<size_t>(id)]; }
  // The id of `text` as one whole token, or -1.
  int32_t Find(std::string_view text) const;

 private:
  Tokenizer() = default;
  void EncodeWord(const std::string& word_utf8_bytes, std::vector<int32_t>* out) const;
  void EncodeText(std::string_view text, std::vector<int32_t>* out) const;

  std::string pre_;
  std::vector<std::string> tokens_;
  std::vector<int32_t> types_;
  std::unordered_map<std::string, int32_t> ids_;
  std::unordered_map<std::string, int32_t> merge_ranks_;  // "left right" -> rank
  struct Special {
    std::string text;
    int32_t id;
    bool control;
  };
  // Special tokens by their first byte, longest first within each list.
  std::vector<Special> specials_by_first_byte_[256];
  std::vector<Regex> regexes_;
  bool ignore_merges_ = false;
  int32_t bos_ = -1, eos_ = -1;
  bool add_bos_ = false;
  std::string byte_to_unicode_[256];
  std::unordered_map<uint32_t, uint8_t> unicode_to_byte_;
};

// Turns a stream of token ids into text that never ends inside a UTF-8 sequence:
// bytes of an incomplete character are held back until it completes; bytes that can
// never form a character come out as U+FFFD. Thread-compatible.
class StreamingDecoder {
 public:
  explicit StreamingDecoder(const Tokenizer& tokenizer) : tokenizer_(tokenizer) {}
  // Text that is ready after `id` (possibly empty).
  std::string Push(int32_t id);
  // Whatever is still held back, as U+FFFD for incomplete bytes.
  std::string Flush();

 private:
  const Tokenizer& tokenizer_;
  std::string pending_;
};

}  // namespace strata::engine

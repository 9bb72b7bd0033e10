#include "engine/tokenizer/tokenizer.h"

#include <algorithm>
#include <climits>

#include "engine/gguf_vocab.h"
#include "engine/tokenizer/unicode.h"
#include "util/utf8.h"

namespace strata::engine {
namespace {

// The pre-tokenizer regex lists, exactly as llama.cpp applies them per pre type.
const std::vector<std::string>* RegexesFor(const std::string& pre) {
  static const std::vector<std::string> kDeepseekV3 = {
      "\\p{N}{1,3}",
      "[一-龥\u3040-ゟ゠-ヿ]+",
      "[!\"#$%&'()*+,\\-./"
      ":;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+| "
      "?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+",
  };
  static const std::vector<std::string> kDeepseekLlm = {
      "[\r\n]",
      "\\s?[A-Za-zµÀ-ÖØ-öø-ƺƼ-ƿǄ-ʓʕ-ʯͰ-ͳͶͷͻ-ͽͿΆΈ-ΊΌΎ-ΡΣ-ϵϷ-ҁҊ-ԯԱ-ՖႠ-ჅᎠ-Ᏽᏸ-ᏽᲐ-ᲺᲽ-"
      "Ჿᴀ-"
      "ᴫᵫ-ᵷᵹ-ᶚḀ-ἕἘ-Ἕἠ-ὅὈ-Ὅὐ-"
      "ὗὙὛὝὟ-ώᾀ-ᾴᾶ-ᾼιῂ-ῄῆ-ῌῐ-ΐῖ-Ίῠ-Ῥῲ-ῴῶ-ῼℂℇℊ-ℓℕℙ-ℝℤΩℨK-ℭℯ-ℴℹℼ-ℿⅅ-ⅉⅎↃↄⰀ-ⱻⱾ-ⳤⳫ-ⳮⳲⳳꙀ-ꙭꚀ-ꚛꜢ-ꝯꝱ-"
      "ꞇꞋ-"
      "ꞎꭰ-ꮿﬀ-ﬆﬓ-"
      "ﬗＡ-Ｚａ-ｚ𐐀-𐑏𐒰-𐓓𐓘-𐓻𐲀-𐲲𐳀-𐳲𑢠-𑣟𞤀-𞥃]+",
      "\\s?[!-/:-~！-／：-～‘-‟　-。]+",
      "\\s+$",
      "[一-龥ࠀ-一가-퟿]+",
      "\\p{N}+",
  };
  static const std::vector<std::string> kDeepseekCoder = {
      "[\r\n]", "\\s?\\p{L}+", "\\s?\\p{P}+", "[一-龥ࠀ-一가-퟿]+", "\\p{N}",
  };
  static const std::vector<std::string> kGpt2 = {
      "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)",
  };
  static const std::vector<std::string> kStarcoder = {
      "\\p{N}",
      "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)",
  };
  static const std::vector<std::string> kLlama3 = {
      "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|"
      "\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
  };
  static const std::vector<std::string> kQwen2 = {
      "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|"
      "\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
  };
  // V4-Flash files declare "joyai-llm" (docs/GGUF.md §3.3) over V3's 129,280-token
  // vocabulary; its split rules are taken to be V3's (not checked against real text).
  if (pre == "deepseek-v3" || pre == "joyai-llm") return &kDeepseekV3;
  if (pre == "deepseek-llm") return &kDeepseekLlm;
  if (pre == "deepseek-coder") return &kDeepseekCoder;
  if (pre == "gpt2" || pre == "gpt-2" || pre == "mpt" || pre == "default") return &kGpt2;
  if (pre == "starcoder" || pre == "refact" || pre == "command-r") return &kStarcoder;
  if (pre == "llama-bpe" || pre == "llama3") return &kLlama3;
  if (pre == "qwen2") return &kQwen2;
  return nullptr;
}

}  // namespace

Result<std::unique_ptr<Tokenizer>> Tokenizer::FromGguf(const storage::GgufFile& f) {
  auto bad = [&](const std::string& what) { return Status::Corruption(f.path() + ": " + what); };
  const std::string model = f.GetStringOr("tokenizer.ggml.model", "");
  if (model != "gpt2") {
    return Status::Unsupported(f.path() + ": tokenizer model '" + model +
                               "' is not supported (strata reads byte-level BPE, 'gpt2')");
  }
  auto t = std::unique_ptr<Tokenizer>(new Tokenizer());
  t->pre_ = f.GetStringOr("tokenizer.ggml.pre", "default");
  const std::vector<std::string>* patterns = RegexesFor(t->pre_);
  if (!patterns) {
    return Status::Unsupported(
        f.path() + ": pre-tokenizer '" + t->pre_ +
        "' is not supported (deepseek-v3, deepseek-llm, deepseek-coder, gpt2, "
        "mpt, starcoder, refact, command-r, llama-bpe, qwen2)");
  }
  for (const std::string& p : *patterns) {
    STRATA_ASSIGN_OR_RETURN(Regex re, Regex::Compile(p));
    t->regexes_.push_back(std::move(re));
  }
  t->ignore_merges_ = t->pre_ == "llama-bpe" || t->pre_ == "llama3";

  const storage::GgufValue* tokens = f.Find("tokenizer.ggml.tokens");
  if (!tokens || tokens->type() != storage::GgufType::kArray ||
      tokens->elem_type() != storage::GgufType::kString || tokens->items().empty()) {
    return bad("tokenizer.ggml.tokens is missing or not a string array");
  }
  for (const auto& v : tokens->items()) t->tokens_.push_back(*v.AsString());
  t->types_.assign(t->tokens_.size(), static_cast<int32_t>(TokenType::kNormal));
  if (const auto* types = f.Find("tokenizer.ggml.token_type")) {
    if (types->items().size() != t->tokens_.size())
      return bad("token_type length differs from tokens");
    for (size_t i = 0; i < types->items().size(); ++i) {
      t->types_[i] = static_cast<int32_t>(types->items()[i].AsSigned().value_or(1));
    }
  }
  for (size_t i = 0; i < t->tokens_.size(); ++i)
    t->ids_.emplace(t->tokens_[i], static_cast<int32_t>(i));
  if (const auto* merges = f.Find("tokenizer.ggml.merges")) {
    int32_t rank = 0;
    for (const auto& m : merges->items()) {
      const std::string* s = m.AsString();
      if (!s) return bad("tokenizer.ggml.merges holds a non-string");
      t->merge_ranks_.emplace(*s, rank++);
    }
  }
  const auto n = static_cast<int64_t>(t->tokens_.size());
  auto id_key = [&](const char* key, int32_t fallback) -> Result<int32_t> {
    const uint64_t v =
        f.GetUnsignedOr(key, static_cast<uint64_t>(fallback < 0 ? UINT64_MAX : fallback));
    if (v == UINT64_MAX) return -1;
    if (static_cast<int64_t>(v) >= n)
      return bad(std::string(key) + " " + std::to_string(v) + " is outside the vocabulary");
    return static_cast<int32_t>(v);
  };
  STRATA_ASSIGN_OR_RETURN(t->bos_, id_key("tokenizer.ggml.bos_token_id", -1));
  STRATA_ASSIGN_OR_RETURN(t->eos_, id_key("tokenizer.ggml.eos_token_id", -1));
  t->add_bos_ = f.GetBoolOr("tokenizer.ggml.add_bos_token", t->bos_ >= 0) && t->bos_ >= 0;

  for (size_t i = 0; i < t->tokens_.size(); ++i) {
    const auto type = static_cast<TokenType>(t->types_[i]);
    if ((type == TokenType::kControl || type == TokenType::kUserDefined) &&
        !t->tokens_[i].empty()) {
      t->specials_by_first_byte_[static_cast<uint8_t>(t->tokens_[i][0])].push_back(
          {t->tokens_[i], static_cast<int32_t>(i), type == TokenType::kControl});
    }
  }
  for (auto& list : t->specials_by_first_byte_) {
    std::stable_sort(list.begin(), list.end(), [](const Special& a, const Special& b) {
      return a.text.size() > b.text.size();
    });
  }
  for (int b = 0; b < 256; ++b) {
    t->byte_to_unicode_[b] = ByteToUnicode(static_cast<uint8_t>(b));
    t->unicode_to_byte_[unicode::DecodeUtf8(t->byte_to_unicode_[b])[0].cp] =
        static_cast<uint8_t>(b);
  }
  return t;
}

int32_t Tokenizer::Find(std::string_view text) const {
  auto it = ids_.find(std::string(text));
  return it == ids_.end() ? -1 : it->second;
}

void Tokenizer::EncodeWord(const std::string& word, std::vector<int32_t>* out) const {
  // Map bytes to their printable spellings, one symbol per byte.
  std::string encoded;
  std::vector<std::string> symbols;
  for (unsigned char c : word) {
    symbols.push_back(byte_to_unicode_[c]);
    encoded += byte_to_unicode_[c];
  }
  if (ignore_merges_) {
    if (auto it = ids_.find(encoded); it != ids_.end()) {
      out->push_back(it->second);
      return;
    }
  }
  // Repeatedly merge the adjacent pair of lowest rank (leftmost on ties).
  while (symbols.size() > 1) {
    int32_t best_rank = INT32_MAX;
    size_t best = 0;
    for (size_t i = 0; i + 1 < symbols.size(); ++i) {
      auto it = merge_ranks_.find(symbols[i] + " " + symbols[i + 1]);
      if (it != merge_ranks_.end() && it->second < best_rank) {
        best_rank = it->second;
        best = i;
      }
    }
    if (best_rank == INT32_MAX) break;
    symbols[best] += symbols[best + 1];
    symbols.erase(symbols.begin() + static_cast<int64_t>(best) + 1);
  }
  for (const std::string& s : symbols) {
    if (auto it = ids_.find(s); it != ids_.end()) {
      out->push_back(it->second);
      continue;
    }
    // Not a token (a vocabulary without every byte): fall back to its bytes.
    for (const auto& span : unicode::DecodeUtf8(s)) {
      auto b = unicode_to_byte_.find(span.cp);
      if (b == unicode_to_byte_.end()) continue;
      if (auto it = ids_.find(byte_to_unicode_[b->second]); it != ids_.end())
        out->push_back(it->second);
    }
  }
}

void Tokenizer::EncodeText(std::string_view text, std::vector<int32_t>* out) const {
  if (text.empty()) return;
  const auto spans = unicode::DecodeUtf8(text);
  std::vector<uint32_t> cps;
  cps.reserve(spans.size());
  for (const auto& s : spans) cps.push_back(s.cp);
  for (const auto& [b, e] : SplitByRegexes(regexes_, cps)) {
    const size_t byte_begin = spans[b].offset;
    const size_t byte_end = spans[e - 1].offset + spans[e - 1].length;
    EncodeWord(std::string(text.substr(byte_begin, byte_end - byte_begin)), out);
  }
}

std::vector<int32_t> Tokenizer::Encode(std::string_view text, bool add_bos,
                                       bool parse_special) const {
  std::vector<int32_t> out;
  if (add_bos && add_bos_) out.push_back(bos_);
  // Partition the text on special tokens (user-defined ones always, control ones only
  // when asked), longest first, then tokenize the plain stretches between them.
  size_t plain_start = 0, pos = 0;
  while (pos < text.size()) {
    const Special* hit = nullptr;
    for (const Special& s : specials_by_first_byte_[static_cast<uint8_t>(text[pos])]) {
      if ((s.control && !parse_special) || s.text.size() > text.size() - pos) continue;
      if (text.compare(pos, s.text.size(), s.text) == 0) {
        hit = &s;
        break;
      }
    }
    if (!hit) {
      ++pos;
      continue;
    }
    EncodeText(text.substr(plain_start, pos - plain_start), &out);
    out.push_back(hit->id);
    pos += hit->text.size();
    plain_start = pos;
  }
  EncodeText(text.substr(plain_start), &out);
  return out;
}

std::string Tokenizer::TokenBytes(int32_t id, bool render_special) const {
  if (id < 0 || id >= n_vocab()) return "";
  const auto type = static_cast<TokenType>(types_[id]);
  if (type == TokenType::kControl || type == TokenType::kUnused)
    return render_special ? tokens_[id] : "";
  if (type == TokenType::kUserDefined) return tokens_[id];
  std::string bytes;
  for (const auto& span : unicode::DecodeUtf8(tokens_[id])) {
    auto it = unicode_to_byte_.find(span.cp);
    if (it != unicode_to_byte_.end()) {
      bytes.push_back(static_cast<char>(it->second));
    } else {
      unicode::AppendUtf8(span.cp, &bytes);
    }
  }
  return bytes;
}

std::string Tokenizer::Decode(std::span<const int32_t> ids, bool render_special) const {
  std::string out;
  for (int32_t id : ids) out += TokenBytes(id, render_special);
  return out;
}

std::string StreamingDecoder::Push(int32_t id) {
  pending_ += tokenizer_.TokenBytes(id);
  std::string ready;
  size_t i = 0;
  uint32_t cp;
  bool truncated;
  while (i < pending_.size()) {
    const size_t len = DecodeUtf8Char(pending_, i, &cp, &truncated);
    if (len > 0) {
      ready.append(pending_, i, len);
      i += len;
    } else if (truncated) {
      break;  // an incomplete character: wait for the next token's bytes
    } else {
      ready += "\xEF\xBF\xBD";  // bytes that can never form a character
      ++i;
    }
  }
  pending_.erase(0, i);
  return ready;
}

std::string StreamingDecoder::Flush() {
  std::string out;
  for (size_t i = 0; i < pending_.size(); ++i) out += "\xEF\xBF\xBD";
  pending_.clear();
  return out;
}

}  // namespace strata::engine

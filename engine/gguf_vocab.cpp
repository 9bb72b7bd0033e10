#include "engine/gguf_vocab.h"

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <unordered_map>

#include "storage/gguf_writer.h"
#include "util/utf8.h"

namespace strata::engine {
namespace {

using nlohmann::json;

Result<json> LoadJson(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::NotFound(path + ": cannot open");
  try {
    return json::parse(in);
  } catch (const json::exception& e) {
    return Status::Corruption(path + ": not valid JSON: " + e.what());
  }
}

// tokenizer_config.json spells special tokens either as a string or as an
// {"content": ...} object.
std::string TokenContent(const json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content") && v["content"].is_string()) {
    return v["content"].get<std::string>();
  }
  return "";
}

}  // namespace

std::string ByteToUnicode(uint8_t b) {
  // Printable Latin-1 bytes map to themselves; the other 68 map, in byte order, to
  // U+0100 onwards (GPT-2's bytes_to_unicode).
  auto printable = [](int c) {
    return (c >= 0x21 && c <= 0x7E) || (c >= 0xA1 && c <= 0xAC) || (c >= 0xAE && c <= 0xFF);
  };
  uint32_t rank = 0;  // how many non-printable bytes come before b
  for (int c = 0; c < b; ++c) rank += printable(c) ? 0 : 1;
  std::string out;
  AppendUtf8(printable(b) ? b : 0x100 + rank, &out);
  return out;
}

void GgufVocab::WriteMetadata(storage::GgufWriter& w) const {
  using storage::GgufValue;
  w.AddMetadata("tokenizer.ggml.model", GgufValue::String(model));
  w.AddMetadata("tokenizer.ggml.pre", GgufValue::String(pre));
  w.AddMetadata("tokenizer.ggml.tokens", GgufValue::StringArray(tokens));
  w.AddMetadata("tokenizer.ggml.token_type", GgufValue::I32Array(token_types));
  w.AddMetadata("tokenizer.ggml.merges", GgufValue::StringArray(merges));
  w.AddMetadata("tokenizer.ggml.bos_token_id", GgufValue::U32(bos_id));
  w.AddMetadata("tokenizer.ggml.eos_token_id", GgufValue::U32(eos_id));
  w.AddMetadata("tokenizer.ggml.padding_token_id", GgufValue::U32(pad_id));
  w.AddMetadata("tokenizer.ggml.add_bos_token", GgufValue::Bool(add_bos));
  w.AddMetadata("tokenizer.ggml.add_eos_token", GgufValue::Bool(add_eos));
  if (!chat_template.empty()) {
    w.AddMetadata("tokenizer.chat_template", GgufValue::String(chat_template));
  }
}

Result<GgufVocab> VocabFromHfTokenizer(const std::string& tokenizer_json, uint32_t pad_to) {
  STRATA_ASSIGN_OR_RETURN(json tok, LoadJson(tokenizer_json));
  auto bad = [&](const std::string& what) {
    return Status::Corruption(tokenizer_json + ": " + what);
  };
  if (!tok.is_object() || !tok.contains("model") || !tok["model"].is_object()) {
    return bad("no \"model\" object");
  }
  const json& model = tok["model"];
  if (model.value("type", "") != "BPE") return bad("model type is not BPE");
  if (!model.contains("vocab") || !model["vocab"].is_object()) return bad("no model.vocab");
  if (!model.contains("merges") || !model["merges"].is_array()) return bad("no model.merges");

  std::unordered_map<uint32_t, std::pair<std::string, TokenType>> by_id;
  uint32_t max_id = 0;
  auto put = [&](uint64_t id, std::string text, TokenType type) -> Status {
    if (id > 10'000'000) return bad("token id " + std::to_string(id) + " is absurd");
    by_id[static_cast<uint32_t>(id)] = {std::move(text), type};
    max_id = std::max(max_id, static_cast<uint32_t>(id));
    return Status::Ok();
  };
  for (const auto& [text, id] : model["vocab"].items()) {
    if (!id.is_number_unsigned()) return bad("vocab entry '" + text + "' has no unsigned id");
    STRATA_RETURN_IF_ERROR(put(id.get<uint64_t>(), text, TokenType::kNormal));
  }
  if (tok.contains("added_tokens") && tok["added_tokens"].is_array()) {
    for (const json& added : tok["added_tokens"]) {
      if (!added.contains("id") || !added["id"].is_number_unsigned() ||
          !added.contains("content") || !added["content"].is_string()) {
        return bad("malformed added_tokens entry");
      }
      const bool special = added.value("special", false);
      STRATA_RETURN_IF_ERROR(put(added["id"].get<uint64_t>(), added["content"].get<std::string>(),
                                 special ? TokenType::kControl : TokenType::kUserDefined));
    }
  }

  GgufVocab v;
  v.source = "tokenizer.json: " + tokenizer_json;
  const uint32_t n_vocab = std::max(max_id + 1, pad_to);
  v.tokens.resize(n_vocab);
  v.token_types.resize(n_vocab);
  std::unordered_map<std::string, uint32_t> id_of;
  for (uint32_t id = 0; id < n_vocab; ++id) {
    auto it = by_id.find(id);
    if (it == by_id.end()) {
      v.tokens[id] = "[PAD" + std::to_string(id) + "]";
      v.token_types[id] = static_cast<int32_t>(TokenType::kUnused);
    } else {
      v.tokens[id] = it->second.first;
      v.token_types[id] = static_cast<int32_t>(it->second.second);
    }
    id_of.emplace(v.tokens[id], id);
  }
  v.merges.reserve(model["merges"].size());
  for (const json& m : model["merges"]) {
    if (m.is_string()) {
      v.merges.push_back(m.get<std::string>());
    } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
      v.merges.push_back(m[0].get<std::string>() + " " + m[1].get<std::string>());
    } else {
      return bad("malformed merge entry");
    }
  }

  const auto config_path =
      (std::filesystem::path(tokenizer_json).parent_path() / "tokenizer_config.json").string();
  if (std::filesystem::exists(config_path)) {
    STRATA_ASSIGN_OR_RETURN(json cfg, LoadJson(config_path));
    if (cfg.contains("chat_template") && cfg["chat_template"].is_string()) {
      v.chat_template = cfg["chat_template"].get<std::string>();
    }
    auto lookup = [&](const char* key, uint32_t* out) {
      if (!cfg.contains(key)) return;
      auto it = id_of.find(TokenContent(cfg[key]));
      if (it != id_of.end()) *out = it->second;
    };
    lookup("bos_token", &v.bos_id);
    lookup("eos_token", &v.eos_id);
    lookup("pad_token", &v.pad_id);
    v.add_bos = cfg.value("add_bos_token", true);
    v.add_eos = cfg.value("add_eos_token", false);
  }
  return v;
}

GgufVocab FallbackByteVocab() {
  GgufVocab v;
  v.source = "fallback-bytes";
  for (int b = 0; b < 256; ++b) {
    v.tokens.push_back(ByteToUnicode(static_cast<uint8_t>(b)));
    v.token_types.push_back(static_cast<int32_t>(TokenType::kNormal));
  }
  for (const char* special : {"<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>", "<｜User｜>",
                              "<｜Assistant｜>", "<think>", "</think>"}) {
    v.tokens.push_back(special);
    v.token_types.push_back(static_cast<int32_t>(TokenType::kControl));
  }
  v.bos_id = 256;
  v.eos_id = 257;
  v.pad_id = 257;
  return v;
}

}  // namespace strata::engine

// What `strata chat` and `strata serve` open before they talk: the tiered model with
// the session's shape in its budget, the tokenizer, and the chat template (forced by
// --chat-template, else detected from the file), with the flags they share checked.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "engine/chat_template.h"
#include "engine/tiered_model.h"
#include "engine/tokenizer/tokenizer.h"
#include "prefetch/prefetcher.h"
#include "storage/ggml_types.h"
#include "tools/tier_flags.h"
#include "util/status.h"

namespace strata::tools {

struct ChatModelFlags {
  std::string model;
  std::string chat_template;  // "" = from the model
  uint32_t ctx_size = 4096;
  int64_t batch_size = 512;
  unsigned threads = 0;
  std::string cache_type = "f16";
  uint32_t sequences = 1;  // serve --parallel: sessions of this many sequences
  TierFlags tiers;
};

struct ChatModel {
  std::unique_ptr<engine::TieredModel> tiered;
  std::unique_ptr<engine::Tokenizer> tokenizer;
  engine::ChatTemplate chat_template;
  std::string template_why;  // which rule chose the template
  storage::GgmlType kv_type = storage::GgmlType::kF16;
  prefetch::PrefetchMode prefetch = prefetch::PrefetchMode::kAll;
};

// Errors name the flag or the file.
Result<ChatModel> OpenChatModel(const ChatModelFlags& flags, bool progress);

}  // namespace strata::tools

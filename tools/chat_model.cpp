#include "tools/chat_model.h"

#include <optional>

namespace strata::tools {

Result<ChatModel> OpenChatModel(const ChatModelFlags& o, bool progress) {
  if (o.model.empty()) return Status::InvalidArgument("-m/--model is required");
  ChatModel m;
  if (o.cache_type == "f32") {
    m.kv_type = storage::GgmlType::kF32;
  } else if (o.cache_type != "f16") {
    return Status::InvalidArgument("--cache-type must be f16 or f32, not '" + o.cache_type + "'");
  }
  std::optional<engine::ChatTemplate> forced;
  if (!o.chat_template.empty()) {
    STRATA_ASSIGN_OR_RETURN(forced, engine::ChatTemplateByName(o.chat_template));
  }
  STRATA_ASSIGN_OR_RETURN(engine::TierOptions tier_options, ToTierOptions(o.tiers));
  tier_options.progress = progress;
  tier_options.session =
      engine::SessionShape{o.ctx_size, o.batch_size, m.kv_type, o.threads, o.sequences};
  STRATA_ASSIGN_OR_RETURN(m.prefetch, ToPrefetchMode(o.tiers));
  STRATA_ASSIGN_OR_RETURN(m.tiered, engine::TieredModel::Open(o.model, tier_options));
  const storage::GgufFile& gguf = m.tiered->model().file().gguf();
  STRATA_ASSIGN_OR_RETURN(m.tokenizer, engine::Tokenizer::FromGguf(gguf));
  if (forced) {
    m.chat_template = *forced;
    m.template_why = "--chat-template";
  } else {
    m.chat_template =
        engine::DetectChatTemplate(gguf, m.tokenizer->Find("<｜User｜>") >= 0, &m.template_why);
  }
  return m;
}

}  // namespace strata::tools

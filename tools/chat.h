// `strata chat`: the interactive terminal chat. A libedit REPL (editing, history in
// $XDG_STATE_HOME/strata/chat_history, multi-line input with a trailing backslash or a
// """ block) over an engine::ChatSession that keeps the conversation in the KV cache,
// so each turn prefills only its new tokens. Answers stream as they are sampled;
// reasoning is shown dimmed or hidden (--think); a status line follows each answer
// (tokens, tok/s, time to first token, and the expert cache's hit rate, MiB read per
// token and stall). Commands: /help /reset /stats /set /save /load /exit.
//
// When stdin is not a terminal, each input line is one user message and only the
// answers are printed (one per message, each ending with a newline): no prompts,
// colours or banners. Ctrl-C stops an answer; Ctrl-C at the prompt or Ctrl-D exits.
#pragma once

#include <cstdint>
#include <string>

#include "engine/sampler.h"
#include "tools/tier_flags.h"
#include "util/status.h"

namespace strata::tools {

struct ChatCliOptions {
  std::string model;
  std::string system_prompt;
  std::string chat_template;   // "" = from the model
  std::string think = "show";  // show | hide | off
  std::string color = "auto";  // auto | always | never
  int32_t n_predict = -1;
  uint32_t ctx_size = 4096;
  int64_t batch_size = 512;
  unsigned threads = 0;
  std::string cache_type = "f16";
  bool ignore_eos = false;
  std::string history_file;  // "" = $XDG_STATE_HOME/strata/chat_history
  TierFlags tiers;
  engine::SamplerOptions sampling;
};

Status RunChat(const ChatCliOptions& options);

}  // namespace strata::tools

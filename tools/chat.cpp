#include "tools/chat.h"

#include <editline/readline.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>

#include "engine/chat_session.h"
#include "engine/tiered_model.h"
#include "storage/output_file.h"
#include "tools/chat_model.h"
#include "tools/conversation_file.h"
#include "util/cancel.h"
#include "util/process_stats.h"
#include "util/size_parse.h"
#include "util/utf8.h"

namespace strata::tools {
namespace {

constexpr const char* kDim = "\x1b[2m";
constexpr const char* kBold = "\x1b[1m";
constexpr const char* kGreen = "\x1b[32m";
constexpr const char* kYellow = "\x1b[33m";
constexpr const char* kReset = "\x1b[0m";

constexpr const char* kHelp =
    "commands:\n"
    "  /help                 this list\n"
    "  /reset                forget the conversation (keeps the system prompt)\n"
    "  /stats                context use, speed and tier statistics\n"
    "  /set NAME VALUE       temp, top-k, top-p, min-p, seed, n-predict, repeat-penalty\n"
    "  /save FILE            save the conversation (JSON)\n"
    "  /load FILE            load a conversation saved by /save and continue it\n"
    "  /exit                 leave (also Ctrl-D, or Ctrl-C at the prompt)\n"
    "input: end a line with \\ to continue it; a line of \"\"\" starts and ends a block.\n"
    "Ctrl-C during an answer stops the answer.\n";

std::string StateDir() {
  if (const char* s = std::getenv("XDG_STATE_HOME"); s && *s) return std::string(s) + "/strata";
  if (const char* h = std::getenv("HOME"); h && *h) return std::string(h) + "/.local/state/strata";
  return "";
}

// Invalid UTF-8 bytes become U+FFFD, so the tokenizer and the terminal see valid text.
std::string SanitizeUtf8(std::string_view text, bool* changed) {
  std::string out;
  out.reserve(text.size());
  *changed = false;
  for (size_t i = 0; i < text.size();) {
    uint32_t cp = 0;
    const size_t n = DecodeUtf8Char(text, i, &cp);
    if (n == 0) {
      AppendUtf8(0xFFFD, &out);
      *changed = true;
      ++i;
    } else {
      out.append(text.substr(i, n));
      i += n;
    }
  }
  return out;
}

class Console {
 public:
  Console(bool interactive, bool color, std::string history)
      : interactive_(interactive), color_(color), history_(std::move(history)) {
    if (interactive_) {
      rl_initialize();
      using_history();
      if (!history_.empty()) read_history(history_.c_str());
    }
  }
  ~Console() {
    if (interactive_ && !history_.empty()) {
      std::error_code ec;
      std::filesystem::create_directories(std::filesystem::path(history_).parent_path(), ec);
      write_history(history_.c_str());
    }
  }

  // One message or command; nullopt at end of input (Ctrl-D, Ctrl-C at the prompt).
  std::optional<std::string> Read() {
    std::string text;
    bool block = false;
    for (bool first = true;; first = false) {
      std::optional<std::string> line =
          ReadLine(first ? PromptPaint(kGreen, "> ") : PromptPaint(kDim, "... "));
      // End of input: a piped last line without its newline still counts.
      if (!line) return first || interactive_ ? std::nullopt : std::optional(text);
      if (first && *line == "\"\"\"") {
        block = true;
        continue;
      }
      if (block) {
        if (*line == "\"\"\"") break;
        text += (text.empty() ? "" : "\n") + *line;
        continue;
      }
      if (!line->empty() && line->back() == '\\') {
        line->pop_back();
        text += *line + "\n";
        continue;
      }
      text += *line;
      break;
    }
    if (interactive_ && !text.empty()) add_history(text.c_str());
    return text;
  }

  std::string Paint(const char* code, std::string_view text) const {
    return color_ ? std::string(code) + std::string(text) + kReset : std::string(text);
  }
  // libedit must not count escape codes as prompt width: \1 ... \2 hide them.
  std::string PromptPaint(const char* code, std::string_view text) const {
    return color_ ? "\1" + std::string(code) + "\2" + std::string(text) + "\1" + kReset + "\2"
                  : std::string(text);
  }
  bool interactive() const { return interactive_; }
  bool color() const { return color_; }

 private:
  std::optional<std::string> ReadLine(const std::string& prompt) {
    if (interactive_) {
      char* raw = readline(prompt.c_str());
      if (!raw) return std::nullopt;
      std::string s(raw);
      std::free(raw);
      return s;
    }
    std::string s;
    if (!std::getline(std::cin, s)) return std::nullopt;
    if (!s.empty() && s.back() == '\r') s.pop_back();
    return s;
  }

  bool interactive_;
  bool color_;
  std::string history_;
};

struct Totals {
  int64_t turns = 0;
  int64_t prompt_tokens = 0;
  int64_t generated = 0;
  double prefill_s = 0;
  double decode_s = 0;
};

Result<double> ParseNumber(const std::string& name, const std::string& value) {
  char* end = nullptr;
  errno = 0;
  const double v = std::strtod(value.c_str(), &end);
  if (value.empty() || errno != 0 || *end != '\0' || v != v) {
    return Status::InvalidArgument("/set " + name + ": '" + value + "' is not a number");
  }
  return v;
}

Status SetOption(engine::ChatSession& chat, const std::string& name, const std::string& value) {
  STRATA_ASSIGN_OR_RETURN(double v, ParseNumber(name, value));
  engine::ChatOptions& o = chat.options();
  auto range = [&](double lo, double hi) -> Status {
    if (v < lo || v > hi) {
      return Status::InvalidArgument("/set " + name + ": " + value + " is outside [" +
                                     std::to_string(lo) + ", " + std::to_string(hi) + "]");
    }
    return Status::Ok();
  };
  auto integer = [&]() -> Status {
    if (v != static_cast<double>(static_cast<int64_t>(v))) {
      return Status::InvalidArgument("/set " + name + ": " + value + " is not a whole number");
    }
    return Status::Ok();
  };
  if (name == "temp") {
    STRATA_RETURN_IF_ERROR(range(0, 100));
    o.sampling.temp = static_cast<float>(v);
  } else if (name == "top-k") {
    STRATA_RETURN_IF_ERROR(integer());
    STRATA_RETURN_IF_ERROR(range(0, 1e9));
    o.sampling.top_k = static_cast<int32_t>(v);
  } else if (name == "top-p") {
    STRATA_RETURN_IF_ERROR(range(0, 1));
    o.sampling.top_p = static_cast<float>(v);
  } else if (name == "min-p") {
    STRATA_RETURN_IF_ERROR(range(0, 1));
    o.sampling.min_p = static_cast<float>(v);
  } else if (name == "repeat-penalty") {
    STRATA_RETURN_IF_ERROR(range(0.01, 100));
    o.sampling.repeat_penalty = static_cast<float>(v);
  } else if (name == "seed") {
    STRATA_RETURN_IF_ERROR(integer());
    STRATA_RETURN_IF_ERROR(range(-1, 9.2e18));
    o.sampling.seed = static_cast<int64_t>(v);
  } else if (name == "n-predict") {
    STRATA_RETURN_IF_ERROR(integer());
    STRATA_RETURN_IF_ERROR(range(-1, 1e9));
    o.n_predict = static_cast<int32_t>(v);
  } else {
    return Status::InvalidArgument("/set: unknown setting '" + name +
                                   "' (temp, top-k, top-p, min-p, seed, n-predict, "
                                   "repeat-penalty)");
  }
  return Status::Ok();
}

Status Save(const engine::ChatSession& chat, const std::string& path) {
  const std::string text =
      SerializeConversation({chat.chat_template().name, chat.system(), chat.messages()});
  STRATA_ASSIGN_OR_RETURN(auto file, storage::OutputFile::Create(path));
  STRATA_RETURN_IF_ERROR(file->Append(text.data(), text.size()));
  return file->Commit();
}

Status Load(engine::ChatSession& chat, const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::NotFound("/load: cannot open '" + path + "'");
  const std::string text{std::istreambuf_iterator<char>(in), {}};
  auto c = ParseConversation(text, path);
  if (!c.ok()) return c.status().WithContext("/load");
  return chat.Load(std::move(c->system), std::move(c->messages));
}

std::string StatusLine(const engine::TurnStats& s, bool tiered) {
  const int decoded = std::max(0, s.generated - 1);
  char line[320];
  int n = std::snprintf(line, sizeof line, "[%d tokens, %.1f tok/s, first token %.2f s",
                        s.generated, s.decode_s > 0 ? decoded / s.decode_s : 0.0, s.prefill_s);
  if (tiered && decoded > 0) {
    const double per = 1.0 / decoded;
    n += std::snprintf(line + n, sizeof line - static_cast<size_t>(n),
                       " | experts: hit %.1f%%, %.1f MiB read/token, stall %.1f ms/token",
                       s.tiers.hit_rate() * 100.0,
                       static_cast<double>(s.tiers.bytes_read) / (1 << 20) * per,
                       static_cast<double>(s.tiers.stall_ns) * 1e-6 * per);
  }
  std::snprintf(line + n, sizeof line - static_cast<size_t>(n), "%s%s]",
                s.cancelled ? " | interrupted" : "", s.context_full ? " | context full" : "");
  return line;
}

}  // namespace

Status RunChat(const ChatCliOptions& o) {
  if (o.model.empty()) return Status::InvalidArgument("chat: -m/--model is required");
  if (o.think != "show" && o.think != "hide" && o.think != "off") {
    return Status::InvalidArgument("--think must be show, hide or off, not '" + o.think + "'");
  }
  if (o.color != "auto" && o.color != "always" && o.color != "never") {
    return Status::InvalidArgument("--color must be auto, always or never, not '" + o.color + "'");
  }
  const bool interactive = ::isatty(STDIN_FILENO) && ::isatty(STDOUT_FILENO);
  const bool color = o.color == "always" ||
                     (o.color == "auto" && interactive && std::getenv("NO_COLOR") == nullptr);
  STRATA_ASSIGN_OR_RETURN(ChatModel opened,
                          OpenChatModel({.model = o.model,
                                         .chat_template = o.chat_template,
                                         .ctx_size = o.ctx_size,
                                         .batch_size = o.batch_size,
                                         .threads = o.threads,
                                         .cache_type = o.cache_type,
                                         .tiers = o.tiers},
                                        interactive));
  std::unique_ptr<engine::TieredModel>& tiered = opened.tiered;
  const storage::GgufFile& gguf = tiered->model().file().gguf();
  std::unique_ptr<engine::Tokenizer>& tokenizer = opened.tokenizer;
  const engine::ChatTemplate& tmpl = opened.chat_template;
  const std::string& why = opened.template_why;
  const storage::GgmlType kv_type = opened.kv_type;
  const prefetch::PrefetchMode prefetch_mode = opened.prefetch;

  engine::ChatOptions co;
  co.n_ctx = o.ctx_size;
  co.kv_type = kv_type;
  co.batch = o.batch_size;
  co.session = {.threads = o.threads, .prefetch = prefetch_mode, .lookahead = o.tiers.lookahead};
  co.sampling = o.sampling;
  co.n_predict = o.n_predict;
  co.thinking = o.think != "off";
  co.ignore_eos = o.ignore_eos;
  engine::ChatSession chat(*tiered, *tokenizer, tmpl, co);
  chat.set_system(o.system_prompt);
  const bool tiered_run = tiered->cache().mode() == "tiered";
  const std::string history = !o.history_file.empty()
                                  ? o.history_file
                                  : (StateDir().empty() ? "" : StateDir() + "/chat_history");
  Console console(interactive, color, history);

  if (interactive) {
    std::printf("%s\n", console.Paint(kBold, "strata chat: " + o.model).c_str());
    std::printf("  template %s (%s), think %s, context %u tokens, tiers: %s\n", tmpl.name.c_str(),
                why.c_str(), o.think.c_str(), o.ctx_size, tiered->TierSummary().c_str());
    if (gguf.Find("strata.synthetic.seed")) {
      std::printf("%s\n", console
                              .Paint(kYellow,
                                     "  this is a synthetic model with random weights: "
                                     "its answers are noise")
                              .c_str());
    }
    if (o.think == "off" && !tmpl.CanSwitchThinking() && tmpl.Thinks(true)) {
      std::printf("  %s always reasons; --think off hides the reasoning instead\n",
                  tmpl.name.c_str());
    }
    std::printf("  /help for commands, Ctrl-D to leave\n");
  }

  Totals totals;
  const bool hide_reasoning = o.think != "show";
  bool in_reasoning = false;
  auto on_text = [&](std::string_view text, bool reasoning) {
    if (reasoning && hide_reasoning) return;
    if (reasoning != in_reasoning && interactive) {
      std::fputs(reasoning ? (color ? kDim : "[thinking] ") : (color ? kReset : "\n[answer] "),
                 stdout);
      in_reasoning = reasoning;
    }
    // In a terminal, the model's text cannot send escape sequences; piped, it is exact.
    const std::string shown = interactive ? SafeForTerminal(text) : std::string(text);
    std::fwrite(shown.data(), 1, shown.size(), stdout);
    std::fflush(stdout);
  };
  auto message = [&](const std::string& text) {
    // Notes go to stdout in a terminal and to stderr in scripts, so answers stay clean.
    std::fprintf(interactive ? stdout : stderr, "%s\n", console.Paint(kYellow, text).c_str());
  };

  for (;;) {
    ClearInterrupt();
    std::optional<std::string> input = console.Read();
    if (!input) {
      if (interactive) std::printf("\n");
      break;
    }
    bool changed = false;
    std::string text = SanitizeUtf8(*input, &changed);
    if (changed) message("note: the input was not valid UTF-8; invalid bytes became U+FFFD");
    if (text.empty()) continue;
    if (text[0] == '/') {
      std::istringstream words(text);
      std::string cmd, a, b, extra;
      words >> cmd >> a >> b >> extra;
      if (cmd == "/exit" || cmd == "/quit") break;
      if (cmd == "/help") {
        std::fputs(kHelp, interactive ? stdout : stderr);
      } else if (cmd == "/reset") {
        chat.Reset();
        totals = {};
        message("conversation cleared");
      } else if (cmd == "/stats") {
        const tiers::CacheStats s = tiered->cache().stats();
        char buf[640];
        std::snprintf(
            buf, sizeof buf,
            "context %lld / %u tokens, %lld turns | prefill %lld tok, %.1f tok/s | decode %lld "
            "tok, %.2f tok/s\n%s | peak RSS %s\nsampling: temp %g, top-k %d, top-p %g, min-p %g, "
            "repeat-penalty %g, seed %lld, n-predict %d",
            static_cast<long long>(chat.n_past()), chat.n_ctx(),
            static_cast<long long>(totals.turns), static_cast<long long>(totals.prompt_tokens),
            totals.prefill_s > 0 ? totals.prompt_tokens / totals.prefill_s : 0.0,
            static_cast<long long>(totals.generated),
            totals.decode_s > 0 ? totals.generated / totals.decode_s : 0.0,
            tiered
                ->TierReport(s, static_cast<uint64_t>(std::max<int64_t>(totals.generated, 1)),
                             tiered->engram_stats())
                .c_str(),
            FormatBytes(PeakRssBytes()).c_str(), chat.options().sampling.temp,
            chat.options().sampling.top_k, chat.options().sampling.top_p,
            chat.options().sampling.min_p, chat.options().sampling.repeat_penalty,
            static_cast<long long>(chat.options().sampling.seed), chat.options().n_predict);
        message(buf);
      } else if (cmd == "/set") {
        const Status s = a.empty() || b.empty() || !extra.empty()
                             ? Status::InvalidArgument("usage: /set NAME VALUE")
                             : SetOption(chat, a, b);
        message(s.ok() ? a + " = " + b : s.message());
      } else if (cmd == "/save") {
        const Status s = a.empty() ? Status::InvalidArgument("usage: /save FILE") : Save(chat, a);
        message(s.ok() ? "saved " + std::to_string(chat.messages().size()) + " messages to " + a
                       : s.message());
      } else if (cmd == "/load") {
        const Status s = a.empty() ? Status::InvalidArgument("usage: /load FILE") : Load(chat, a);
        message(s.ok() ? "loaded " + std::to_string(chat.messages().size()) + " messages (" +
                             std::to_string(chat.n_past()) + " tokens) from " + a
                       : s.message());
      } else {
        message("unknown command '" + cmd + "'; /help lists the commands");
      }
      continue;
    }

    engine::TurnStats stats;
    in_reasoning = false;
    const Status s = chat.Turn(text, on_text, &stats);
    if (in_reasoning && color) std::fputs(kReset, stdout);
    if (s.code() == StatusCode::kResourceExhausted) {
      message(s.message());
      continue;
    }
    std::printf("\n");
    std::fflush(stdout);
    if (!s.ok()) return s;  // an expert read failed for good: the conversation cannot go on
    tiered->SaveHeat();
    ++totals.turns;
    totals.prompt_tokens += stats.prompt_tokens;
    totals.generated += stats.generated;
    totals.prefill_s += stats.prefill_s;
    totals.decode_s += stats.decode_s;
    const std::string status = StatusLine(stats, tiered_run);
    if (interactive) {
      std::printf("%s\n", console.Paint(kDim, status).c_str());
    } else {
      std::fprintf(stderr, "%s\n", status.c_str());
    }
    if (stats.context_full) {
      message("the context is full (" + std::to_string(chat.n_ctx()) +
              " tokens): /reset to start a new conversation, or raise -c/--ctx-size");
    }
  }
  tiered->SaveHeat();
  return Status::Ok();
}

}  // namespace strata::tools

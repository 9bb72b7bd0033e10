#include "tools/run.h"

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

#include "engine/session.h"
#include "engine/tokenizer/tokenizer.h"
#include "storage/output_file.h"
#include "util/cancel.h"
#include "util/process_stats.h"
#include "util/size_parse.h"
#include "util/utf8.h"

namespace strata::tools {
namespace {

using Clock = std::chrono::steady_clock;

Result<std::string> PromptText(const std::string& prompt, const std::string& file) {
  if (file.empty()) return prompt;
  std::ifstream in(file, std::ios::binary);
  if (!in) return Status::NotFound("-f/--file: cannot read '" + file + "'");
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

double Seconds(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

// --logits-out layout (docs/FORMAT.md): a 16-byte header {"STRL", u32 version = 1,
// u32 n_vocab, u32 0}, then one row of n_vocab little-endian float32 per generated
// token: the logits its choice was made from.
class LogitsWriter {
 public:
  static Result<std::unique_ptr<LogitsWriter>> Open(const std::string& path, uint32_t n_vocab) {
    STRATA_ASSIGN_OR_RETURN(auto file, storage::OutputFile::Create(path));
    auto w = std::unique_ptr<LogitsWriter>(new LogitsWriter(std::move(file)));
    const uint32_t header[4] = {0x4C525453u /* "STRL" */, 1, n_vocab, 0};
    STRATA_RETURN_IF_ERROR(w->file_->Append(header, sizeof(header)));
    return w;
  }
  Status Append(const std::vector<float>& logits) {
    return file_->Append(logits.data(), logits.size() * sizeof(float));
  }
  Status Commit() { return file_->Commit(); }

 private:
  explicit LogitsWriter(std::unique_ptr<storage::OutputFile> f) : file_(std::move(f)) {}
  std::unique_ptr<storage::OutputFile> file_;
};

}  // namespace

Status RunGenerate(const RunOptions& o) {
  if (o.model.empty()) return Status::InvalidArgument("run: -m/--model is required");
  STRATA_ASSIGN_OR_RETURN(std::string text, PromptText(o.prompt, o.prompt_file));
  storage::GgmlType cache_type;
  if (o.cache_type == "f16") {
    cache_type = storage::GgmlType::kF16;
  } else if (o.cache_type == "f32") {
    cache_type = storage::GgmlType::kF32;
  } else {
    return Status::InvalidArgument("--cache-type must be f16 or f32, not '" + o.cache_type + "'");
  }

  STRATA_ASSIGN_OR_RETURN(engine::TierOptions tier_options, ToTierOptions(o.tiers));
  tier_options.session = engine::SessionShape{o.ctx_size, o.batch_size, cache_type, o.threads};
  STRATA_ASSIGN_OR_RETURN(prefetch::PrefetchMode prefetch_mode, ToPrefetchMode(o.tiers));
  const auto t_load = Clock::now();
  STRATA_ASSIGN_OR_RETURN(auto tiered, engine::TieredModel::Open(o.model, tier_options));
  engine::DeepseekModel* model = &tiered->model();
  STRATA_ASSIGN_OR_RETURN(auto tokenizer, engine::Tokenizer::FromGguf(model->file().gguf()));
  if (tokenizer->n_vocab() != static_cast<int32_t>(model->config().n_vocab)) {
    return Status::Corruption(o.model + ": vocabulary has " + std::to_string(tokenizer->n_vocab()) +
                              " tokens but the embedding has " +
                              std::to_string(model->config().n_vocab) + " rows");
  }
  const double load_seconds = Seconds(t_load, Clock::now());

  std::vector<int32_t> prompt = tokenizer->Encode(text, o.add_bos, o.parse_special);
  if (prompt.empty()) return Status::InvalidArgument("run: the prompt is empty (-p or -f)");
  if (prompt.size() >= o.ctx_size) {
    return Status::InvalidArgument("the prompt has " + std::to_string(prompt.size()) +
                                   " tokens but -c/--ctx-size is " + std::to_string(o.ctx_size));
  }
  engine::Session session(
      *model, o.ctx_size, cache_type,
      {.threads = o.threads, .prefetch = prefetch_mode, .lookahead = o.tiers.lookahead});
  engine::Sampler sampler(o.sampling);
  for (int32_t t : prompt) sampler.Accept(t);
  std::unique_ptr<LogitsWriter> logits_out;
  if (!o.logits_out.empty()) {
    STRATA_ASSIGN_OR_RETURN(logits_out, LogitsWriter::Open(o.logits_out, model->config().n_vocab));
  }

  std::vector<float> logits;
  const auto t_prompt = Clock::now();
  STRATA_RETURN_IF_ERROR(session.Eval(prompt, &logits, o.batch_size));
  const auto t_first = Clock::now();
  const tiers::CacheStats after_prefill = tiered->cache().stats();
  const tiers::EngramStats engram_after_prefill = tiered->engram_stats();

  engine::StreamingDecoder stream(*tokenizer);
  std::string generated;
  int32_t n_generated = 0;
  const int32_t limit = o.n_predict < 0 ? INT32_MAX : o.n_predict;
  bool stopped = false;
  // In a terminal, the model's text cannot send escape sequences; piped, it is exact.
  const bool terminal = ::isatty(STDOUT_FILENO);
  auto show = [&](const std::string& piece) {
    const std::string shown = terminal ? SafeForTerminal(piece) : piece;
    std::fwrite(shown.data(), 1, shown.size(), stdout);
    std::fflush(stdout);
  };
  while (n_generated < limit && !InterruptRequested()) {
    if (logits_out) STRATA_RETURN_IF_ERROR(logits_out->Append(logits));
    const int32_t next = sampler.Sample(logits);
    sampler.Accept(next);
    ++n_generated;
    if (next == tokenizer->eos() && !o.ignore_eos) break;
    const std::string piece = stream.Push(next);
    generated += piece;
    show(piece);
    for (const std::string& s : o.stop) stopped |= !s.empty() && generated.ends_with(s);
    if (stopped || n_generated == limit) break;
    if (session.n_past() + 1 > static_cast<int64_t>(session.n_ctx())) {
      std::fprintf(stderr, "\nstrata: context full (%u tokens); stopping\n", session.n_ctx());
      break;
    }
    const int32_t one[] = {next};
    STRATA_RETURN_IF_ERROR(session.Eval(one, &logits));
  }
  show(stream.Flush());
  std::printf("\n");
  const auto t_end = Clock::now();
  if (logits_out) STRATA_RETURN_IF_ERROR(logits_out->Commit());
  tiered->SaveHeat();

  if (o.report) {
    const double prompt_s = Seconds(t_prompt, t_first), decode_s = Seconds(t_first, t_end);
    const int32_t decoded = std::max(0, n_generated - 1);  // the first token came from prefill
    std::fprintf(
        stderr,
        "strata run: load %.1f s | prompt %zu tok, %.1f tok/s | generated %d tok, %.2f tok/s | "
        "first token %.0f ms | %u threads | peak RSS %s\n",
        load_seconds, prompt.size(), prompt.size() / std::max(prompt_s, 1e-9), n_generated,
        decoded / std::max(decode_s, 1e-9), prompt_s * 1000.0, session.pool().num_threads(),
        FormatBytes(PeakRssBytes()).c_str());
    std::fprintf(stderr, "strata run: %s (per decoded token)\n",
                 tiered
                     ->TierReport(tiered->cache().stats().Since(after_prefill),
                                  static_cast<uint64_t>(decoded),
                                  tiered->engram_stats().Since(engram_after_prefill))
                     .c_str());
  }
  if (InterruptRequested()) return Status::Cancelled("interrupted");
  if (const std::string bad = tiered->cache().stats().Inconsistency(); !bad.empty()) {
    return Status::Corruption("tier counters are inconsistent: " + bad);
  }
  return Status::Ok();
}

Status RunTokenize(const TokenizeOptions& o) {
  if (o.model.empty()) return Status::InvalidArgument("tokenize: -m/--model is required");
  STRATA_ASSIGN_OR_RETURN(std::string text, PromptText(o.prompt, o.prompt_file));
  STRATA_ASSIGN_OR_RETURN(storage::GgufFile gguf, storage::ReadGgufFile(o.model));
  STRATA_ASSIGN_OR_RETURN(auto tokenizer, engine::Tokenizer::FromGguf(gguf));
  const std::vector<int32_t> ids = tokenizer->Encode(text, o.add_bos, o.parse_special);
  if (o.ids_only) {
    std::printf("[");
    for (size_t i = 0; i < ids.size(); ++i) std::printf("%s%d", i ? ", " : "", ids[i]);
    std::printf("]\n");
    return Status::Ok();
  }
  for (int32_t id : ids) {
    std::printf("%6d\t'%s'\n", id, tokenizer->TokenBytes(id, /*render_special=*/true).c_str());
  }
  std::printf("%zu tokens\n", ids.size());
  return Status::Ok();
}

}  // namespace strata::tools

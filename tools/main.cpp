// strata: run DeepSeek-family MoE models bigger than your RAM.
// One binary, one CLI11 subcommand per job; each subcommand's logic lives in its own
// file in tools/ so tests can call it without a process.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

#include "storage/ggml_types.h"
#include "tools/bench.h"
#include "tools/chat.h"
#include "tools/serve.h"
#include "tools/cli_common.h"
#include "tools/inspect.h"
#include "tools/make_model.h"
#include "tools/pack.h"
#include "tools/plan.h"
#include "tools/run.h"
#include "util/cancel.h"
#include "util/log.h"
#include "util/size_parse.h"

namespace {

using strata::Status;
using namespace strata::tools;

struct GlobalOptions {
  bool verbose = false;
  std::string log_file;
};

void AddMakeModel(CLI::App& app, MakeModelOptions& o, std::string& type_name,
                  std::string& split_max_size) {
  CLI::App* cmd = app.add_subcommand(
      "make-model", "Write a deterministic synthetic deepseek2 GGUF with real shapes");
  cmd->add_option("--preset", o.preset,
                  "tiny (a few MB), small (~230 MB), v2lite (V2-Lite shapes, GBs), v3-slice (V3 "
                  "shapes, 3 dense + 1 MoE layer), engram-tiny "
                  "(tiny + mHC + Engram), engram-big (1.3 GB backbone + two 8.2 GB Engram tables), "
                  "v4-tiny (DeepSeek-V4 at test size), v4flash-slice (V4-Flash shapes, 4 layers, "
                  "~15 GB in MXFP4)")
      ->check(CLI::IsMember(PresetNames()))
      ->capture_default_str();
  cmd->add_option("-o,--output", o.output, "Output GGUF path (written via OUTPUT.tmp)")->required();
  cmd->add_option("-s,--seed", o.seed, "Seed: the same seed gives a byte-identical file")
      ->capture_default_str();
  cmd->add_option(
      "--type", type_name,
      "Weight type: F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, "
      "MXFP4, IQ1_S, IQ1_M, IQ2_XXS, IQ2_XS, IQ2_S, IQ3_XXS, IQ3_S, IQ4_NL, IQ4_XS "
      "(default: Q8_0 for tiny, Q4_K otherwise)");
  cmd->add_option("--layers", o.layers, "Override the number of layers")
      ->check(CLI::Range(1, 1000));
  cmd->add_option("--experts", o.experts, "Override routed experts per MoE layer")
      ->check(CLI::Range(1, 4096));
  cmd->add_option("--hidden", o.hidden, "Override the embedding width (hidden size)")
      ->check(CLI::Range(32, 65536));
  cmd->add_option("--routing-skew", o.routing_skew,
                  "Zipf exponent of expert popularity (0 = near-uniform routing)")
      ->capture_default_str();
  cmd->add_option("--tokenizer", o.tokenizer,
                  "HF tokenizer.json to embed, or 'none' for the fallback byte vocabulary "
                  "(default: the cached DeepSeek-V3 tokenizer; tiny: none)");
  cmd->add_option("-t,--threads", o.threads, "Generator threads (default: all cores)");
  cmd->add_option("--engram-rows", o.engram_rows,
                  "Engram presets: rows per table (default: engram-tiny ~8k, engram-big ~31M "
                  "= 8.2 GB per table)");
  cmd->add_option("--engram-encoding", o.engram_encoding,
                  "Engram presets: row encoding e4m3_e8m0_32_row264 (default), q4_k_row144, "
                  "f16, bf16, q8_0, f32");
  cmd->add_option("--recipe", o.recipe,
                  "Per-tensor types of a published mix instead of --type: q4_k_m (llama-quantize "
                  "Q4_K_M), ds4-q2 (ds4's V4-Flash q2: IQ2_XXS gate/up, Q2_K down, Q8_0 rest), "
                  "ud-iq1_s (V3/R1 dynamic 1.58-bit style: IQ1_S/IQ1_M/IQ2_XXS experts, Q4_K/Q6_K "
                  "elsewhere)");
  cmd->add_option("--split-max-size", split_max_size,
                  "Write a split set (PREFIX-00001-of-0000N.gguf, as llama.cpp's gguf-split) with "
                  "at most SIZE of tensor data per shard (e.g. 2G); OUTPUT minus .gguf is the prefix");
  cmd->add_option("--engram-module", o.engram_module,
                  "Engram presets: v41 (default: fused kv, gated per stream) or demo (per-stream "
                  "keys, value projection, short conv)");
}

void AddInspect(CLI::App& app, InspectOptions& o) {
  CLI::App* cmd = app.add_subcommand(
      "inspect", "Show a GGUF's architecture, hyperparameters, tensors, footprint and verdict");
  cmd->add_option("model", o.model, "GGUF file")->required();
  cmd->add_option("-m,--model", o.model, "GGUF file (same as the positional argument)");
  cmd->add_flag("--json", o.json, "Print JSON instead of tables");
  cmd->add_flag("!--no-tensors", o.tensors, "Leave out the per-tensor table");
  cmd->add_flag("--metadata", o.all_metadata, "Also list every metadata key and value");
  cmd->add_flag("--profile", o.profile,
                "Show the model's heat profile (expert use counts) instead of the file");
  cmd->add_option("--profile-file", o.profile_file,
                  "Heat profile to show (default: MODEL.strata-heat)");
}

void AddSampling(CLI::App* cmd, strata::engine::SamplerOptions& s) {
  cmd->add_option("-s,--seed", s.seed, "Sampling seed (-1: random)")->capture_default_str();
  cmd->add_option("--temp", s.temp, "Temperature (0: greedy)")->capture_default_str();
  cmd->add_option("--top-k", s.top_k, "Top-k (0: off)")->capture_default_str();
  cmd->add_option("--top-p", s.top_p, "Top-p (1: off)")->capture_default_str();
  cmd->add_option("--min-p", s.min_p, "Min-p (0: off)")->capture_default_str();
  cmd->add_option("--repeat-penalty", s.repeat_penalty, "Repeat penalty (1: off)")
      ->capture_default_str();
  cmd->add_option("--repeat-last-n", s.repeat_last_n, "Tokens the repeat penalty looks back over")
      ->capture_default_str();
}

// -b, -t and --cache-type, shared by run and chat.
void AddComputeOptions(CLI::App* cmd, int64_t& batch_size, unsigned& threads,
                       std::string& cache_type) {
  cmd->add_option("-b,--batch-size", batch_size, "Prompt tokens per prefill chunk")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{65536}));
  cmd->add_option("-t,--threads", threads, "Threads (default: physical cores)");
  cmd->add_option("--cache-type", cache_type, "KV cache type: f16 or f32")
      ->capture_default_str()
      ->check(CLI::IsMember({"f16", "f32"}));
}

void AddRun(CLI::App& app, RunOptions& o) {
  CLI::App* cmd = app.add_subcommand("run", "Generate text from a prompt (one shot)");
  cmd->add_option("-m,--model", o.model, "GGUF model")->required();
  auto* prompt = cmd->add_option("-p,--prompt", o.prompt, "Prompt text");
  cmd->add_option("-f,--file", o.prompt_file, "Read the prompt from a file")->excludes(prompt);
  cmd->add_option("-n,--n-predict", o.n_predict, "Tokens to generate (-1: until EOS)")
      ->capture_default_str();
  cmd->add_option("-c,--ctx-size", o.ctx_size, "Context size in tokens")
      ->capture_default_str()
      ->check(CLI::Range(1u, 1u << 24));
  AddComputeOptions(cmd, o.batch_size, o.threads, o.cache_type);
  cmd->add_option("--stop", o.stop, "Stop when the output ends with this string (repeatable)");
  AddTierFlags(*cmd, o.tiers);
  cmd->add_option("--logits-out", o.logits_out,
                  "Write each step's logits (float32, docs/FORMAT.md)");
  cmd->add_flag("!--no-bos", o.add_bos, "Do not add BOS");
  cmd->add_flag("--ignore-eos", o.ignore_eos,
                "Keep generating past the end-of-sequence token (soak tests, benchmarks)");
  AddSampling(cmd, o.sampling);
}

void AddTokenize(CLI::App& app, TokenizeOptions& o) {
  CLI::App* cmd = app.add_subcommand("tokenize", "Print the token ids of a text");
  cmd->add_option("-m,--model", o.model, "GGUF model (only its header is read)")->required();
  auto* prompt = cmd->add_option("-p,--prompt", o.prompt, "Text");
  cmd->add_option("-f,--file", o.prompt_file, "Read the text from a file")->excludes(prompt);
  cmd->add_flag("--ids", o.ids_only, "Print only the ids, as a list");
  cmd->add_flag("!--no-bos", o.add_bos, "Do not add BOS");
  cmd->add_flag("!--no-parse-special", o.parse_special, "Treat control-token text as plain text");
}

void AddBench(CLI::App& app, BenchOptions& o) {
  CLI::App* cmd =
      app.add_subcommand("bench", "Measure prefill and decode speed against this machine's bounds");
  cmd->add_option("-m,--model", o.model, "GGUF model")->required();
  cmd->add_option("-p,--n-prompt", o.n_prompt, "Prompt tokens for the prefill test (pp)")
      ->capture_default_str()
      ->check(CLI::Range(0, 65536));
  cmd->add_option("-n,--n-gen", o.n_gen, "Tokens for the decode test (tg)")
      ->capture_default_str()
      ->check(CLI::Range(0, 65536));
  cmd->add_option("-r,--repetitions", o.repetitions, "Repetitions (the median is reported)")
      ->capture_default_str()
      ->check(CLI::Range(1, 1000));
  cmd->add_option("-b,--batch-size", o.batch_size, "Prompt tokens per prefill chunk")
      ->capture_default_str();
  cmd->add_option("-t,--threads", o.threads, "Threads (default: physical cores)");
  cmd->add_flag("--json", o.json, "Print JSON");
  cmd->add_flag("--cold", o.cold,
                "Drop the page cache and start from an empty expert cache every repetition");
  cmd->add_option("--sweep", o.sweep,
                  "Budgets to run, one row each (e.g. --sweep 2G,4G,6G,unlimited)")
      ->delimiter(',');
  cmd->add_flag("--interleave", o.interleave,
                "With --sweep: keep every row's model open and alternate their repetitions; "
                "prints each row's paired decode and prefill ratio to the first row");
  cmd->add_flag("--lockstep", o.lockstep,
                "--interleave token by token: each decode step runs on every row before the "
                "next, so even fast drift in this machine's speed cancels in the ratios");
  cmd->add_option("--text", o.text,
                  "Real text: the prompt is its first -p tokens and decode feeds the next -n "
                  "(teacher forcing), so Engram and the routers see real n-grams")
      ->check(CLI::ExistingFile);
  cmd->add_option("--parallel", o.parallel,
                  "Sequences decoding together, as `serve --parallel` runs them: each step "
                  "decodes one token of every sequence in one pass (tg is their sum; MiB/tok "
                  "and the ms breakdown are per generated token)")
      ->capture_default_str()
      ->check(CLI::Range(1, 64));
  AddTierFlags(*cmd, o.tiers);
}

void AddPlan(CLI::App& app, PlanOptions& o) {
  CLI::App* cmd = app.add_subcommand(
      "plan", "Show where the weights would live for a budget and predict decode speed");
  cmd->add_option("-m,--model", o.model, "GGUF model (only its header is read)")->required();
  cmd->add_option("--budgets", o.budgets, "More budgets to plan, one row each (e.g. 2G,6G)")
      ->delimiter(',');
  cmd->add_option("-c,--ctx-size", o.ctx_size, "Context the budget must hold (as run's -c)")
      ->capture_default_str()
      ->check(CLI::Range(1u, 1u << 24));
  AddComputeOptions(cmd, o.batch_size, o.threads, o.cache_type);
  cmd->add_flag("!--no-drive", o.measure_drive, "Skip the drive measurement (about 3 s)");
  cmd->add_flag("--json", o.json, "Print JSON");
  AddTierFlags(*cmd, o.tiers);
}

void AddChat(CLI::App& app, ChatCliOptions& o) {
  CLI::App* cmd = app.add_subcommand("chat", "Chat with a model in the terminal");
  cmd->add_option("-m,--model", o.model, "GGUF model")->required();
  // llama.cpp's spelling, -sys, is rewritten to --system-prompt before parsing.
  cmd->add_option("--system-prompt", o.system_prompt, "System prompt (also -sys)");
  cmd->add_option("--chat-template", o.chat_template,
                  "deepseek2, deepseek3, deepseek-r1, deepseek3.1 or deepseek4 "
                  "(default: from the model)");
  cmd->add_option("--think", o.think,
                  "Reasoning: show (dimmed), hide, or off (non-thinking mode where the "
                  "template has one)")
      ->capture_default_str();
  cmd->add_option("--color", o.color, "auto, always or never")->capture_default_str();
  cmd->add_option("-n,--n-predict", o.n_predict, "Tokens per answer at most (-1: until EOS)")
      ->capture_default_str();
  cmd->add_option("-c,--ctx-size", o.ctx_size, "Context size in tokens (the whole conversation)")
      ->capture_default_str()
      ->check(CLI::Range(16u, 1u << 24));
  AddComputeOptions(cmd, o.batch_size, o.threads, o.cache_type);
  cmd->add_flag("--ignore-eos", o.ignore_eos,
                "Keep generating past the end-of-sequence token (until -n or the context)");
  cmd->add_option("--history-file", o.history_file,
                  "Line history (default: $XDG_STATE_HOME/strata/chat_history)");
  AddTierFlags(*cmd, o.tiers);
  AddSampling(cmd, o.sampling);
}

void AddServe(CLI::App& app, ServeCliOptions& o) {
  CLI::App* cmd = app.add_subcommand(
      "serve", "Serve the model over HTTP: OpenAI (/v1/chat/completions, /v1/completions) and "
               "Anthropic (/v1/messages) APIs");
  cmd->add_option("-m,--model", o.model.model, "GGUF model")->required();
  cmd->add_option("--host", o.host, "Address to listen on")->capture_default_str();
  cmd->add_option("--port", o.port, "Port (0: any free port)")->capture_default_str();
  cmd->add_option("--api-key", o.api_key,
                  "Require this key (Authorization: Bearer, or x-api-key); also STRATA_API_KEY");
  cmd->add_option("--alias", o.alias, "The model id clients use (default: the file's name)");
  cmd->add_option("--parallel", o.parallel,
                  "Slots: requests generating at once, decoded together in one batched step "
                  "(each slot has its own -c context)")
      ->capture_default_str()
      ->check(CLI::Range(1u, 256u));
  cmd->add_option("--prompt-cache-dir", o.prompt_cache_dir,
                  "Keep prompt prefixes' state on disk here, so later requests and restarted "
                  "servers skip their prefill");
  cmd->add_option("--prompt-cache-size", o.prompt_cache_size,
                  "Bytes the prompt cache may use for this model (least recently used go first)")
      ->capture_default_str();
  cmd->add_option("--prompt-cache-min", o.prompt_cache_min,
                  "Tokens a sequence needs before it is stored in the prompt cache")
      ->capture_default_str();
  cmd->add_option("--max-queue", o.max_queue, "Requests that may wait for a slot (more: 429)")
      ->capture_default_str()
      ->check(CLI::Range(0u, 100000u));
  cmd->add_option("--max-body", o.max_body, "Largest request body (more: 413)")
      ->capture_default_str();
  cmd->add_option("--chat-template", o.model.chat_template,
                  "deepseek2, deepseek3, deepseek-r1, deepseek3.1 or deepseek4 "
                  "(default: from the model)");
  cmd->add_option("--think", o.think,
                  "Hybrid templates' mode when a request does not choose: on or off")
      ->capture_default_str();
  cmd->add_option("-c,--ctx-size", o.model.ctx_size,
                  "Context size in tokens (prompt + answer), of each slot")
      ->capture_default_str()
      ->check(CLI::Range(16u, 1u << 24));
  AddComputeOptions(cmd, o.model.batch_size, o.model.threads, o.model.cache_type);
  AddTierFlags(*cmd, o.model.tiers);
}

void AddPack(CLI::App& app, PackCliOptions& o) {
  CLI::App* cmd = app.add_subcommand(
      "pack", "Rewrite a GGUF so each expert is one aligned, checksummed (compressed) read");
  cmd->add_option("input", o.input, "GGUF to pack (left untouched)")->required();
  cmd->add_option("output", o.output, "Packed GGUF to write (via OUTPUT.tmp)")->required();
  cmd->add_option(
         "--codec", o.codec,
         "none, lz4, zstd, zstd:LEVEL (1-22), each optionally +group (byte-group "
         "F16/BF16/F32), or auto (measure, keep compression only where it beats the drive)")
      ->capture_default_str();
  cmd->add_option("-t,--threads", o.threads, "Encoder threads (default: all cores)");
  cmd->add_flag("!--no-verify", o.verify,
                "Skip reading the output back (index, checksums, decodes) before the rename");
  AddSizeOption(*cmd, "--drive-speed", &o.drive_bytes_per_s,
                "For --codec auto: the drive's read bandwidth per second (default: measured)");
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"strata: run DeepSeek-family MoE models bigger than your RAM"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "strata 0.1.0");
  GlobalOptions global;
  app.add_flag("-v,--verbose", global.verbose, "Log debug messages");
  app.add_option("--log-file", global.log_file, "Also write the log to this file");

  MakeModelOptions make_model;
  std::string type_name;
  std::string split_max_size;
  AddMakeModel(app, make_model, type_name, split_max_size);
  InspectOptions inspect;
  AddInspect(app, inspect);
  RunOptions run;
  AddRun(app, run);
  TokenizeOptions tokenize;
  AddTokenize(app, tokenize);
  BenchOptions bench;
  AddBench(app, bench);
  PlanOptions plan;
  AddPlan(app, plan);
  PackCliOptions pack;
  AddPack(app, pack);
  ChatCliOptions chat;
  AddChat(app, chat);
  ServeCliOptions serve;
  AddServe(app, serve);
  // Inspect takes the model positionally or with -m; both fill the same field.
  app.get_subcommand("inspect")->get_option("model")->required(false);

  AddEnvironmentVariables(app);
  std::vector<std::string> args(argv + 1, argv + argc);
  for (std::string& a : args) {
    if (a == "-sys") a = "--system-prompt";
  }
  std::reverse(args.begin(), args.end());  // CLI11 takes them last-first
  try {
    app.parse(args);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  strata::ConfigureLogging({.verbose = global.verbose, .file = global.log_file});
  strata::InstallInterruptHandler();

  if (app.got_subcommand("make-model")) {
    if (!type_name.empty()) {
      auto t = strata::storage::GgmlTypeFromName(type_name);
      if (!t)
        return ReportError(Status::InvalidArgument("--type: unknown type '" + type_name + "'"));
      make_model.type = *t;
    }
    if (!split_max_size.empty()) {
      auto size = strata::ParseSize(split_max_size);
      if (!size.ok()) return ReportError(size.status().WithContext("--split-max-size"));
      if (*size == 0) return ReportError(Status::InvalidArgument("--split-max-size must be more than 0"));
      make_model.split_max_size = *size;
    }
    auto report = MakeModel(make_model);
    if (!report.ok()) return ReportError(report.status());
    const std::string written = report->files.size() == 1
                                    ? report->files[0]
                                    : report->files[0] + " (+" + std::to_string(report->files.size() - 1) +
                                          " shards: a split set)";
    std::printf("wrote %s: %s in %.1f s (tokenizer: %s)\n", written.c_str(),
                strata::FormatBytes(report->file_bytes).c_str(), report->seconds,
                report->tokenizer_source.c_str());
    return 0;
  }
  if (app.got_subcommand("run")) {
    Status s = RunGenerate(run);
    return s.ok() ? 0 : ReportError(s);
  }
  if (app.got_subcommand("plan")) {
    Status s = RunPlan(plan);
    return s.ok() ? 0 : ReportError(s);
  }
  if (app.got_subcommand("chat")) {
    Status s = RunChat(chat);
    return s.ok() ? 0 : ReportError(s);
  }
  if (app.got_subcommand("serve")) {
    Status s = RunServe(serve);
    return s.ok() ? 0 : ReportError(s);
  }
  if (app.got_subcommand("pack")) {
    Status s = RunPack(pack);
    return s.ok() ? 0 : ReportError(s);
  }
  if (app.got_subcommand("bench")) {
    Status s = RunBench(bench);
    return s.ok() ? 0 : ReportError(s);
  }
  if (app.got_subcommand("tokenize")) {
    Status s = RunTokenize(tokenize);
    return s.ok() ? 0 : ReportError(s);
  }
  if (app.got_subcommand("inspect")) {
    if (inspect.model.empty()) {
      return ReportError(Status::InvalidArgument("inspect: give a model path (or -m PATH)"));
    }
    Status s = RunInspect(inspect);
    return s.ok() ? 0 : ReportError(s);
  }
  return 0;
}

// libFuzzer target: arbitrary bytes as a saved sequence (engine::Session::LoadSequence,
// what serve's prompt cache reads back from disk) for a deepseek2 and a deepseek4
// session, and as a prompt cache entry file (server::PromptStore's header, tokens and
// checksum). Loading either succeeds, and the sequence then runs a token, or fails
// with an error and leaves the sequence reset; never a crash, a hang or a read out of
// bounds. The first byte picks the target. The models are written once, at start.
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "engine/deepseek_model.h"
#include "engine/session.h"
#include "server/prompt_store.h"
#include "tools/make_model.h"

namespace {

struct Target {
  std::unique_ptr<strata::engine::DeepseekModel> model;
  std::unique_ptr<strata::engine::Session> session;
};

Target targets[2];
std::string dir;

Target Load(const std::string& preset) {
  const std::string path = dir + "/" + preset + ".gguf";
  strata::tools::MakeModelOptions o;
  o.preset = preset;
  o.output = path;
  o.tokenizer = "none";
  o.progress = false;
  if (!strata::tools::MakeModel(o).ok()) abort();
  auto file = strata::engine::ModelFile::Open(path);
  if (!file.ok()) abort();
  auto model = strata::engine::DeepseekModel::Load(std::move(*file));
  if (!model.ok()) abort();
  Target t;
  t.model = std::move(*model);
  t.session = std::make_unique<strata::engine::Session>(*t.model, 64, strata::storage::GgmlType::kF16,
                                                        strata::engine::SessionOptions{.threads = 1});
  return t;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  dir = (std::filesystem::temp_directory_path() / ("strata-fuzz-seq-" + std::to_string(::getpid()))).string();
  std::filesystem::create_directories(dir);
  targets[0] = Load("tiny");
  targets[1] = Load("v4-tiny");
  // STRATA_FUZZ_WRITE_SEEDS=DIR: writes the seed corpus (each model's sequence after
  // three tokens) and exits.
  if (const char* seeds = std::getenv("STRATA_FUZZ_WRITE_SEEDS")) {
    for (uint8_t i = 0; i < 2; ++i) {
      strata::engine::Session& s = *targets[i].session;
      std::vector<float> logits;
      const int32_t tokens[] = {1, 2, 3};
      if (!s.Eval(tokens, &logits).ok()) abort();
      std::vector<uint8_t> seed = {i};
      const std::vector<uint8_t> saved = s.SaveSequence(0);
      seed.insert(seed.end(), saved.begin(), saved.end());
      std::ofstream(std::string(seeds) + "/" + (i ? "v4-tiny" : "tiny"), std::ios::binary)
          .write(reinterpret_cast<const char*>(seed.data()), static_cast<std::streamsize>(seed.size()));
      s.Reset();
    }
    // A prompt cache entry of the tokens 0..9, as the store writes it.
    const std::string store_dir = dir + "/seed-store";
    {
      auto store = strata::server::PromptStore::Open({.dir = store_dir, .max_bytes = 1 << 20, .model_key = 7});
      if (!store.ok()) abort();
      std::vector<int32_t> tokens(10);
      for (int i = 0; i < 10; ++i) tokens[i] = i;
      (*store)->Put(tokens, {1, 2, 3, 4});
      (*store)->Flush();
    }
    for (const auto& e : std::filesystem::directory_iterator(store_dir)) {
      std::ifstream in(e.path(), std::ios::binary);
      std::string entry((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      std::ofstream(std::string(seeds) + "/store-entry", std::ios::binary) << '\x02' << entry;
    }
    std::filesystem::remove_all(dir);
    std::exit(0);
  }
  std::atexit([] { std::filesystem::remove_all(dir); });
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace strata;
  if (size == 0) return 0;
  const std::span<const uint8_t> bytes(data + 1, size - 1);
  if (data[0] % 3 < 2) {
    engine::Session& s = *targets[data[0] % 3].session;
    if (s.LoadSequence(0, bytes).ok()) {
      if (s.n_past(0) < 0 || s.n_past(0) > s.n_ctx()) abort();
      std::vector<float> logits;
      const int32_t token = 1;
      if (s.n_past(0) < s.n_ctx() && !s.Eval({&token, 1}, &logits).ok()) abort();
    } else if (s.n_past(0) != 0) {
      abort();  // a refused load resets the sequence
    }
    s.Reset();
    return 0;
  }
  // A prompt cache directory holding this one entry file (named, as the store names
  // entries, after the token hash its header claims), then a lookup.
  const std::string store_dir = dir + "/store";
  std::filesystem::remove_all(store_dir);
  std::filesystem::create_directories(store_dir);
  uint64_t claimed = 0;
  if (bytes.size() >= 40) std::memcpy(&claimed, bytes.data() + 32, sizeof claimed);
  char name[64];
  std::snprintf(name, sizeof name, "/0000000000000007-%016llx.strata-prompt",
                static_cast<unsigned long long>(claimed));
  std::ofstream(store_dir + name, std::ios::binary)
      .write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  auto store = server::PromptStore::Open({.dir = store_dir, .max_bytes = 1 << 20, .model_key = 7});
  if (!store.ok()) abort();
  std::vector<int32_t> prompt(64);
  for (int i = 0; i < 64; ++i) prompt[i] = i;
  (void)(*store)->Find(prompt, 0, 63);
  return 0;
}

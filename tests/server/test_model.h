// The models the server tests run: a make-model preset with the fallback byte
// vocabulary, written once per test process under /var/tmp and removed when it exits.
#pragma once

#include <unistd.h>

#include <filesystem>
#include <string>

#include "gtest/gtest.h"
#include "tools/make_model.h"

namespace strata::server::testing {

inline std::string ServerTestModel(const std::string& preset) {
  const std::string path =
      "/var/tmp/strata-server-" + std::to_string(::getpid()) + "-" + preset + ".gguf";
  if (!std::filesystem::exists(path)) {
    tools::MakeModelOptions o;
    o.preset = preset;
    o.output = path;
    o.tokenizer = "none";
    o.progress = false;
    EXPECT_TRUE(tools::MakeModel(o).ok());
  }
  return path;
}

class ServerTestModelCleanup : public ::testing::Environment {
 public:
  void TearDown() override {
    const std::string prefix = "strata-server-" + std::to_string(::getpid()) + "-";
    for (const auto& e : std::filesystem::directory_iterator("/var/tmp")) {
      if (e.path().filename().string().starts_with(prefix)) std::filesystem::remove(e.path());
    }
  }
};

}  // namespace strata::server::testing

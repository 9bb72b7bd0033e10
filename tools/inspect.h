// `strata inspect MODEL [--json]`: what a model file is, what it would cost to run,
// and whether strata can run it. Never reads tensor data.
#pragma once

#include <string>

#include "storage/gguf.h"
#include "util/status.h"

namespace strata::tools {

struct InspectOptions {
  std::string model;
  bool json = false;
  bool tensors = true;  // print the per-tensor table
  bool all_metadata = false;
  bool profile = false;      // show the heat profile instead of the file
  std::string profile_file;  // default: MODEL.strata-heat
};

// The verdict on a parsed file: OK, or why strata cannot run it.
struct Verdict {
  bool runnable = false;
  std::string text;
};
Verdict CheckRunnable(const storage::GgufFile& file);

// Prints the report to stdout. A file that fails to parse is an error Status; a file
// that parses but that strata cannot run is reported in the verdict (exit code 0).
Status RunInspect(const InspectOptions& options);

}  // namespace strata::tools

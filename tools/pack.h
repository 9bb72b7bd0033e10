// `strata pack IN OUT`: rewrites a GGUF so every expert bundle is one 4 KiB-aligned,
// checksummed read, compressed where that beats the drive (storage/pack_writer.h does
// the writing; this file chooses codecs and reports).
//
// --codec auto samples bundles of each bundle class (the stacks' types), measures each
// candidate codec's ratio and single-thread decode speed (decoding runs on the reader's
// completion thread), and keeps compression only where
//   stored bytes / drive bandwidth + decode time  <  raw bytes / drive bandwidth
// by at least 5%. The drive bandwidth is measured on IN (or given with --drive-speed).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "storage/bundle_codec.h"
#include "util/status.h"

namespace strata::tools {

struct PackCliOptions {
  std::string input;
  std::string output;
  std::string codec = "auto";
  unsigned threads = 0;  // 0: all cores
  bool verify = true;
  uint64_t drive_bytes_per_s = 0;  // 0: measure on the input
  bool progress = true;
  bool quiet = false;  // no report on stdout (tests)
};

struct CodecTrial {
  std::string bundle_class;
  storage::CodecChoice codec;
  double ratio = 1;               // stored / raw
  double decode_bytes_per_s = 0;  // raw bytes out per second, one thread
  double relative_cost = 1;       // estimated read + decode time / raw read time
};

struct AutoChoice {
  double drive_bytes_per_s = 0;
  std::vector<CodecTrial> trials;
  std::map<std::string, storage::CodecChoice> chosen;
};

// Measures the candidates on sampled bundles of `path` and picks a codec per class.
Result<AutoChoice> ChooseCodecs(const std::string& path, double drive_bytes_per_s);

Status RunPack(const PackCliOptions& options);

}  // namespace strata::tools

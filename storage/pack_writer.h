// Writes a packed GGUF (docs/FORMAT.md): every non-expert tensor byte-identical, each MoE
// layer's three expert stacks replaced by one blob of 4 KiB-aligned, checksummed expert
// bundles, encoded with the codec chosen for the layer's bundle class, and the index
// under strata.pack.*.
//
// Streaming: bundles are read, encoded by `threads` workers and written in order with at
// most a few bundles per worker in memory, so memory does not depend on the model size.
// The header's size is known up front (every index value is fixed-width), so it is
// written last, in place. Output goes to OUT.tmp; with `verify` the temporary is read
// back (index, every checksum, every decode, every tensor's hash) before the rename.
// A failed read, a full disk or Ctrl-C (util/cancel.h) leaves no OUT and no OUT.tmp.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <string>

#include "storage/bundle_codec.h"
#include "storage/ggml_types.h"
#include "util/status.h"

namespace strata {
class ProgressBar;
}

namespace strata::storage {

class GgufFile;
struct TensorInfo;

// The class a layer's bundles belong to for codec choice and statistics: the stacks'
// types, "Q4_0" when all three agree, else "Q4_K/Q4_K/Q6_K".
std::string BundleClassName(const std::array<GgmlType, 3>& types);

struct PackOptions {
  // The codec for a bundle class (BundleClassName); unset classes get `codec`.
  std::map<std::string, CodecChoice> class_codecs;
  CodecChoice codec;
  unsigned threads = 1;
  bool verify = true;
  uint64_t fail_after_bytes = 0;  // tests: simulate a full disk after this many bytes
};

struct PackClassStats {
  uint64_t bundles = 0;
  uint64_t compressed_bundles = 0;  // kept compressed (the rest were stored raw)
  uint64_t raw_bytes = 0;
  uint64_t stored_bytes = 0;
  std::string codec;  // what was asked for
};

struct PackReport {
  uint64_t input_bytes = 0;   // tensor bytes read
  uint64_t output_bytes = 0;  // file size
  uint64_t layers = 0;
  std::map<std::string, PackClassStats> classes;
  double seconds = 0;  // reading, encoding and writing
  double verify_seconds = 0;
};

// The MoE layers of `file` that pack would pack (all three stacks present, agreeing on
// the expert count), with their gate, up and down stacks.
std::map<uint32_t, std::array<const TensorInfo*, 3>> PackableStacks(const GgufFile& file);

// Refuses what PackModel would refuse before reading any weight: OUT naming IN, an
// input that is not a GGUF, already packed, or has no expert stacks.
Status CheckPackRequest(const std::string& in, const std::string& out);

// Packs `in` into `out` (after CheckPackRequest).
Result<PackReport> PackModel(const std::string& in, const std::string& out,
                             const PackOptions& options, ProgressBar* progress);

}  // namespace strata::storage

// libFuzzer target: arbitrary bytes as a GGUF file. The reader must return a Status
// for anything it rejects and never crash, hang or over-allocate; for anything it
// accepts, the catalog must be self-consistent.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "storage/gguf.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto file = strata::storage::NewMemoryFile(
      "fuzz.gguf", std::string(reinterpret_cast<const char*>(data), size));
  auto parsed = strata::storage::ReadGguf(*file);
  if (!parsed.ok()) return 0;
  const auto& f = *parsed;
  for (const auto& t : f.tensors()) {
    if (t.packed) continue;  // read through the pack index, checked below
    // Invariants the engine relies on: data lies inside the file and is aligned.
    if (t.file_offset + t.bytes > f.file_size() || t.file_offset % f.alignment() != 0) abort();
    if (t.is_expert_stack() && t.ne[2] > 0) {
      const auto last = t.ExpertRange(t.ne[2] - 1);
      if (last.offset + last.bytes > t.file_offset + t.bytes) abort();
    }
  }
  if (const auto* pack = f.pack()) {
    for (const auto& L : pack->layers) {
      for (const auto& e : L.entries) {
        if (e.offset % strata::storage::kPackAlignment != 0 ||
            e.offset + e.stored > f.file_size() || e.offset < L.blob_offset ||
            e.offset + e.stored > L.blob_offset + L.blob_bytes) {
          abort();
        }
      }
    }
  }
  return 0;
}

// The heat profile: how often each (layer, expert) bundle of one model was used, kept
// across runs in a small memory-mapped file (Boost.Interprocess managed_mapped_file)
// beside the model ("<model>.strata-heat") or at --profile PATH. Runs add their
// counts when they end; the next run warms its cache hottest-first and `strata plan`
// predicts misses from it. Counts are added with atomic operations on the shared
// mapping, so processes updating one profile at once never lose or tear an update.
// A profile made for another model (different bundle count or file identity) is
// refused with a message naming it.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "storage/gguf.h"
#include "util/status.h"

namespace strata::tiers {

class HeatProfile {
 public:
  // `chosen` if the user named a file, else "<model>.strata-heat" beside the model.
  static std::string PathFor(const std::string& model_path, const std::string& chosen);

  // Opens or creates the profile at `path` for a model with `n_bundles` bundles and
  // identity `model_id` (any stable fingerprint of the model file).
  static Result<std::unique_ptr<HeatProfile>> Open(const std::string& path, uint64_t n_bundles,
                                                   uint64_t model_id);
  // Opens an existing profile read-only; NotFound if there is none.
  static Result<std::unique_ptr<HeatProfile>> OpenExisting(const std::string& path,
                                                           uint64_t n_bundles, uint64_t model_id);
  ~HeatProfile();

  const std::string& path() const { return path_; }
  // Adds `counts` (one per bundle) to the profile atomically, entry by entry.
  void Add(std::span<const uint64_t> counts);
  std::vector<uint64_t> Counts() const;
  uint64_t runs() const;

 private:
  struct Impl;
  HeatProfile(std::string path, std::unique_ptr<Impl> impl);
  std::string path_;
  std::unique_ptr<Impl> impl_;
};

// A model fingerprint for the profile: file size and the layout of its tensor data.
uint64_t ModelFingerprint(const storage::GgufFile& file);

}  // namespace strata::tiers

#include "tiers/heat_profile.h"

#include <atomic>
#include <boost/interprocess/managed_mapped_file.hpp>
#include <filesystem>

namespace strata::tiers {
namespace bip = boost::interprocess;

namespace {

constexpr uint64_t kMagic = 0x5441454841525453;  // "STRAHEAT"

struct Header {
  uint64_t magic;
  uint64_t model_id;
  uint64_t n_bundles;
  uint64_t runs;
};

}  // namespace

struct HeatProfile::Impl {
  bip::managed_mapped_file file;
  Header* header = nullptr;
  uint64_t* counts = nullptr;
};

std::string HeatProfile::PathFor(const std::string& model_path, const std::string& chosen) {
  return chosen.empty() ? model_path + ".strata-heat" : chosen;
}

uint64_t ModelFingerprint(const storage::GgufFile& file) {
  return file.file_size() * 0x9E3779B97F4A7C15ull ^ (file.data_offset() << 20) ^
         file.tensors().size();
}

HeatProfile::HeatProfile(std::string path, std::unique_ptr<Impl> impl)
    : path_(std::move(path)), impl_(std::move(impl)) {}
HeatProfile::~HeatProfile() = default;

namespace {

Status CheckHeader(const std::string& path, const Header& h, uint64_t n_bundles,
                   uint64_t model_id) {
  if (h.magic != kMagic || h.n_bundles != n_bundles || h.model_id != model_id) {
    return Status::InvalidArgument("--profile " + path +
                                   ": this heat profile belongs to another model (" +
                                   std::to_string(h.n_bundles) + " bundles, this model has " +
                                   std::to_string(n_bundles) + "); delete it or pick another path");
  }
  return Status::Ok();
}

}  // namespace

Result<std::unique_ptr<HeatProfile>> HeatProfile::Open(const std::string& path, uint64_t n_bundles,
                                                       uint64_t model_id) {
  auto impl = std::make_unique<Impl>();
  try {
    impl->file = bip::managed_mapped_file(bip::open_or_create, path.c_str(),
                                          65536 + n_bundles * sizeof(uint64_t) * 2);
    // find_or_construct runs under the segment's own interprocess lock, so two
    // processes creating the profile at once agree on one header and one array.
    impl->header =
        impl->file.find_or_construct<Header>("header")(Header{kMagic, model_id, n_bundles, 0});
    impl->counts = impl->file.find_or_construct<uint64_t>("counts")[n_bundles](0);
  } catch (const std::exception& e) {
    return Status::IOError("--profile " + path + ": " + e.what());
  }
  STRATA_RETURN_IF_ERROR(CheckHeader(path, *impl->header, n_bundles, model_id));
  return std::unique_ptr<HeatProfile>(new HeatProfile(path, std::move(impl)));
}

Result<std::unique_ptr<HeatProfile>> HeatProfile::OpenExisting(const std::string& path,
                                                               uint64_t n_bundles,
                                                               uint64_t model_id) {
  if (!std::filesystem::exists(path)) {
    return Status::NotFound("--profile " + path + ": no heat profile yet");
  }
  auto impl = std::make_unique<Impl>();
  try {
    impl->file = bip::managed_mapped_file(bip::open_only, path.c_str());
    impl->header = impl->file.find<Header>("header").first;
    auto counts = impl->file.find<uint64_t>("counts");
    impl->counts = counts.first;
    if (!impl->header || !impl->counts || counts.second != n_bundles) {
      return Status::Corruption("--profile " + path + ": not a strata heat profile for this model");
    }
  } catch (const std::exception& e) {
    return Status::Corruption("--profile " + path + ": " + e.what());
  }
  STRATA_RETURN_IF_ERROR(CheckHeader(path, *impl->header, n_bundles, model_id));
  return std::unique_ptr<HeatProfile>(new HeatProfile(path, std::move(impl)));
}

void HeatProfile::Add(std::span<const uint64_t> counts) {
  const uint64_t n = std::min<uint64_t>(counts.size(), impl_->header->n_bundles);
  for (uint64_t i = 0; i < n; ++i) {
    if (counts[i]) std::atomic_ref<uint64_t>(impl_->counts[i]).fetch_add(counts[i]);
  }
  std::atomic_ref<uint64_t>(impl_->header->runs).fetch_add(1);
  impl_->file.flush();
}

std::vector<uint64_t> HeatProfile::Counts() const {
  std::vector<uint64_t> out(impl_->header->n_bundles);
  for (size_t i = 0; i < out.size(); ++i)
    out[i] = std::atomic_ref<uint64_t>(impl_->counts[i]).load();
  return out;
}

uint64_t HeatProfile::runs() const { return std::atomic_ref<uint64_t>(impl_->header->runs).load(); }

}  // namespace strata::tiers

#include "tools/pack.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <thread>

#include "storage/drive_probe.h"
#include "storage/file.h"
#include "storage/gguf.h"
#include "storage/pack_writer.h"
#include "util/progress.h"
#include "util/size_parse.h"

namespace strata::tools {
namespace {

constexpr int kSamplesPerClass = 6;
constexpr double kMustSave = 0.95;  // compression must cut the cost by 5% to be kept

using Stacks = std::array<const storage::TensorInfo*, 3>;

// Raw bundles of one class, spread over its layers and experts.
Result<std::vector<std::vector<uint8_t>>> SampleBundles(const storage::RandomAccessFile& file,
                                                        const std::vector<Stacks>& layers,
                                                        storage::BundleLayout* layout) {
  std::vector<std::vector<uint8_t>> out;
  for (int i = 0; i < kSamplesPerClass; ++i) {
    const Stacks& s = layers[static_cast<size_t>(i) * layers.size() / kSamplesPerClass];
    const uint64_t expert = (static_cast<uint64_t>(i) * 7919) % s[0]->ne[2];
    std::vector<uint8_t> raw;
    for (int r = 0; r < 3; ++r) {
      const storage::ByteRange range = s[r]->ExpertRange(expert);
      layout->bytes[r] = range.bytes;
      layout->group_width[r] = storage::GroupWidth(s[r]->type);
      raw.resize(raw.size() + range.bytes);
      STRATA_RETURN_IF_ERROR(
          file.ReadExact(range.offset, range.bytes, raw.data() + raw.size() - range.bytes));
    }
    out.push_back(std::move(raw));
  }
  return out;
}

double Seconds(std::chrono::steady_clock::time_point since) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - since).count();
}

}  // namespace

Result<AutoChoice> ChooseCodecs(const std::string& path, double drive_bytes_per_s) {
  AutoChoice choice;
  choice.drive_bytes_per_s = drive_bytes_per_s;
  STRATA_ASSIGN_OR_RETURN(storage::GgufFile gguf, storage::ReadGgufFile(path));
  STRATA_ASSIGN_OR_RETURN(auto file, storage::OpenGgufData(gguf));
  std::map<std::string, std::vector<Stacks>> layers_of;
  for (const auto& [layer, s] : storage::PackableStacks(gguf)) {
    layers_of[storage::BundleClassName({s[0]->type, s[1]->type, s[2]->type})].push_back(s);
  }
  for (const auto& [cls, layers] : layers_of) {
    storage::BundleLayout layout;
    STRATA_ASSIGN_OR_RETURN(auto samples, SampleBundles(*file, layers, &layout));
    std::vector<storage::CodecChoice> candidates = {{storage::Codec::kLz4, 0, false},
                                                    {storage::Codec::kZstd, 3, false}};
    if (layout.groupable()) {
      candidates.push_back({storage::Codec::kLz4, 0, true});
      candidates.push_back({storage::Codec::kZstd, 3, true});
    }
    storage::CodecChoice best{};
    double best_cost = kMustSave;
    for (const storage::CodecChoice& c : candidates) {
      uint64_t raw_total = 0, stored_total = 0;
      double decode_s = 0;
      std::vector<uint8_t> stored, back(layout.raw_bytes());
      for (const auto& raw : samples) {
        const uint8_t codec = storage::EncodeBundle(raw, layout, c, &stored);
        const uint64_t sum = storage::BundleChecksum(stored);
        const auto t0 = std::chrono::steady_clock::now();
        STRATA_RETURN_IF_ERROR(storage::DecodeBundle(codec, stored, layout, true, sum, back));
        decode_s += Seconds(t0);
        raw_total += raw.size();
        stored_total += stored.size();
      }
      CodecTrial t;
      t.bundle_class = cls;
      t.codec = c;
      t.ratio = static_cast<double>(stored_total) / static_cast<double>(raw_total);
      t.decode_bytes_per_s = decode_s > 0 ? static_cast<double>(raw_total) / decode_s : 0;
      const double raw_read_s = static_cast<double>(raw_total) / drive_bytes_per_s;
      t.relative_cost =
          (static_cast<double>(stored_total) / drive_bytes_per_s + decode_s) / raw_read_s;
      if (t.relative_cost < best_cost) {
        best_cost = t.relative_cost;
        best = c;
      }
      choice.trials.push_back(t);
    }
    choice.chosen[cls] = best;
  }
  return choice;
}

Status RunPack(const PackCliOptions& o) {
  STRATA_RETURN_IF_ERROR(storage::CheckPackRequest(o.input, o.output));
  storage::PackOptions po;
  po.threads = o.threads ? o.threads : std::max(1u, std::thread::hardware_concurrency());
  po.verify = o.verify;
  if (o.codec == "auto") {
    double bw = static_cast<double>(o.drive_bytes_per_s);
    if (bw == 0) {
      STRATA_ASSIGN_OR_RETURN(storage::DriveProfile drive, storage::MeasureDrive(o.input, 1.0));
      bw = drive.seq_bytes_per_s;
    }
    STRATA_ASSIGN_OR_RETURN(AutoChoice auto_choice, ChooseCodecs(o.input, bw));
    if (!o.quiet) {
      std::printf("codec auto: drive %.2f GB/s%s\n", bw / 1e9,
                  o.drive_bytes_per_s ? " (--drive-speed)" : " (measured on the input)");
      std::printf("  %-16s %-14s %7s %12s %10s\n", "class", "candidate", "ratio", "decode GB/s",
                  "cost/raw");
      for (const CodecTrial& t : auto_choice.trials) {
        std::printf("  %-16s %-14s %7.3f %12.2f %10.2f\n", t.bundle_class.c_str(),
                    t.codec.ToString().c_str(), t.ratio, t.decode_bytes_per_s / 1e9,
                    t.relative_cost);
      }
      for (const auto& [cls, c] : auto_choice.chosen) {
        std::printf("  -> %s: %s\n", cls.c_str(), c.ToString().c_str());
      }
    }
    po.class_codecs = auto_choice.chosen;
  } else {
    STRATA_ASSIGN_OR_RETURN(po.codec, storage::ParseCodecChoice(o.codec));
  }
  uint64_t total = 0;
  {
    STRATA_ASSIGN_OR_RETURN(storage::GgufFile g, storage::ReadGgufFile(o.input));
    for (const storage::TensorInfo& t : g.tensors()) total += t.bytes;
  }
  ProgressBar progress("pack", total, o.progress);
  STRATA_ASSIGN_OR_RETURN(storage::PackReport r,
                          storage::PackModel(o.input, o.output, po, &progress));
  if (o.quiet) return Status::Ok();
  std::printf("packed %s -> %s: %llu MoE layers, %s\n", o.input.c_str(), o.output.c_str(),
              static_cast<unsigned long long>(r.layers), FormatBytes(r.output_bytes).c_str());
  std::printf("  %-16s %-14s %8s %10s %11s %11s %7s\n", "class", "codec", "bundles", "compressed",
              "raw", "stored", "ratio");
  for (const auto& [cls, c] : r.classes) {
    std::printf(
        "  %-16s %-14s %8llu %10llu %11s %11s %7.3f\n", cls.c_str(), c.codec.c_str(),
        static_cast<unsigned long long>(c.bundles),
        static_cast<unsigned long long>(c.compressed_bundles), FormatBytes(c.raw_bytes).c_str(),
        FormatBytes(c.stored_bytes).c_str(),
        c.raw_bytes ? static_cast<double>(c.stored_bytes) / static_cast<double>(c.raw_bytes) : 1.0);
  }
  std::printf("  pack %.1f s (%.0f MB/s of input)", r.seconds,
              static_cast<double>(r.input_bytes) / r.seconds / 1e6);
  if (o.verify) std::printf(", verify %.1f s", r.verify_seconds);
  std::printf("\n");
  return Status::Ok();
}

}  // namespace strata::tools

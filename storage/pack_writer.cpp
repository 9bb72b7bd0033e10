#include "storage/pack_writer.h"

#include <sys/stat.h>
#include <xxhash.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <set>
#include <thread>

#include "storage/file.h"
#include "storage/gguf.h"
#include "storage/gguf_writer.h"
#include "storage/output_file.h"
#include "util/cancel.h"
#include "util/checked_math.h"
#include "util/progress.h"

namespace strata::storage {
namespace {

constexpr uint64_t kCopyChunk = 8 << 20;

// "blk.12.ffn_up_exps.weight" -> {12, 1}; {-1, -1} for anything else.
std::pair<int64_t, int> StackOf(const TensorInfo& t) {
  static constexpr std::array<std::string_view, 3> kSuffix = {
      ".ffn_gate_exps.weight", ".ffn_up_exps.weight", ".ffn_down_exps.weight"};
  const std::string_view n = t.name;
  if (t.n_dims != 3 || !n.starts_with("blk.")) return {-1, -1};
  for (int r = 0; r < 3; ++r) {
    if (!n.ends_with(kSuffix[r])) continue;
    const std::string_view num = n.substr(4, n.size() - 4 - kSuffix[r].size());
    if (num.empty() || num.size() > 6 ||
        !std::all_of(num.begin(), num.end(), [](char c) { return c >= '0' && c <= '9'; })) {
      return {-1, -1};
    }
    return {std::stoll(std::string(num)), r};
  }
  return {-1, -1};
}

}  // namespace

std::map<uint32_t, std::array<const TensorInfo*, 3>> PackableStacks(const GgufFile& file) {
  std::map<uint32_t, std::array<const TensorInfo*, 3>> layers;
  for (const TensorInfo& t : file.tensors()) {
    const auto [layer, role] = StackOf(t);
    if (layer < 0 || t.packed) continue;
    layers[static_cast<uint32_t>(layer)][role] = &t;
  }
  // Only complete layers whose stacks agree on the expert count are packed.
  std::erase_if(layers, [](const auto& kv) {
    const auto& s = kv.second;
    return !s[0] || !s[1] || !s[2] || s[0]->ne[2] != s[1]->ne[2] || s[0]->ne[2] != s[2]->ne[2];
  });
  return layers;
}

namespace {

struct LayerPack {
  uint32_t layer = 0;
  std::array<const TensorInfo*, 3> stacks{};
  BundleLayout layout;
  CodecChoice codec;
  std::string cls;
  std::vector<uint64_t> codec_byte, offset, stored, xxh3, raw_hash;
};

struct OutTensor {
  std::string name;
  GgmlType type;
  std::vector<uint64_t> ne;
  uint64_t offset = 0;              // from the data section
  const TensorInfo* src = nullptr;  // copied tensor
  LayerPack* pack = nullptr;        // blob
  uint64_t hash = 0;                // copied tensor's XXH3 (verify)
};

GgufValue U64s(const std::vector<uint64_t>& v) {
  std::vector<GgufValue> items;
  items.reserve(v.size());
  for (uint64_t x : v) items.push_back(GgufValue::U64(x));
  return GgufValue::Array(GgufType::kU64, std::move(items));
}

GgufValue U8s(const std::vector<uint64_t>& v) {
  std::vector<GgufValue> items;
  items.reserve(v.size());
  for (uint64_t x : v) items.push_back(GgufValue::Unsigned(GgufType::kU8, x));
  return GgufValue::Array(GgufType::kU8, std::move(items));
}

std::vector<std::pair<std::string, GgufValue>> PackMetadata(const GgufFile& in,
                                                            const std::vector<LayerPack>& layers) {
  std::vector<std::pair<std::string, GgufValue>> md;
  for (const auto& kv : in.metadata()) {
    // A split set packs into one file: it is no longer a shard.
    if (kv.first.rfind("split.", 0) != 0) md.push_back(kv);
  }
  md.emplace_back(std::string(kPackVersionKey), GgufValue::U32(kPackVersion));
  md.emplace_back(std::string(kPackAlignmentKey),
                  GgufValue::U32(static_cast<uint32_t>(kPackAlignment)));
  const std::string source = in.path().substr(in.path().find_last_of('/') + 1);
  md.emplace_back(std::string(kPackSourceKey), GgufValue::String(source));
  std::vector<uint32_t> ids;
  for (const LayerPack& L : layers) ids.push_back(L.layer);
  md.emplace_back(std::string(kPackLayersKey), GgufValue::U32Array(ids));
  for (const LayerPack& L : layers) {
    std::vector<std::string> names;
    std::vector<uint32_t> types;
    std::vector<uint64_t> shapes;
    for (const TensorInfo* t : L.stacks) {
      names.push_back(t->name);
      types.push_back(static_cast<uint32_t>(t->type));
      for (int d = 0; d < 3; ++d) shapes.push_back(t->ne[d]);
    }
    const std::vector<uint64_t> raw(L.codec_byte.size(), L.layout.raw_bytes());
    md.emplace_back(PackLayerKey(L.layer, "stacks"), GgufValue::StringArray(names));
    md.emplace_back(PackLayerKey(L.layer, "types"), GgufValue::U32Array(types));
    md.emplace_back(PackLayerKey(L.layer, "shapes"), U64s(shapes));
    md.emplace_back(PackLayerKey(L.layer, "codec_label"), GgufValue::String(L.codec.ToString()));
    md.emplace_back(PackLayerKey(L.layer, "codec"), U8s(L.codec_byte));
    md.emplace_back(PackLayerKey(L.layer, "offset"), U64s(L.offset));
    md.emplace_back(PackLayerKey(L.layer, "stored"), U64s(L.stored));
    md.emplace_back(PackLayerKey(L.layer, "raw"), U64s(raw));
    md.emplace_back(PackLayerKey(L.layer, "xxh3"), U64s(L.xxh3));
  }
  return md;
}

std::vector<HeaderTensor> HeaderTensors(const std::vector<OutTensor>& out) {
  std::vector<HeaderTensor> h;
  for (const OutTensor& t : out) h.push_back({t.name, t.type, t.ne, t.offset});
  return h;
}

// Appends to the output, failing like a full disk after `fail_after` bytes (tests).
class Writer {
 public:
  Writer(OutputFile* file, uint64_t fail_after) : file_(file), fail_after_(fail_after) {}
  Status Append(const void* data, size_t n) {
    if (InterruptRequested()) {
      return Status::Cancelled(file_->path() + ": interrupted; no file written");
    }
    if (fail_after_ && file_->bytes_written() + n > fail_after_) {
      return Status::ResourceExhausted(file_->path() + ": disk full while writing (simulated)");
    }
    return file_->Append(data, n);
  }
  Status PadTo(uint64_t absolute) {
    static const uint8_t kZeros[4096] = {};
    while (file_->bytes_written() < absolute) {
      const uint64_t n = std::min<uint64_t>(sizeof kZeros, absolute - file_->bytes_written());
      STRATA_RETURN_IF_ERROR(Append(kZeros, static_cast<size_t>(n)));
    }
    return Status::Ok();
  }
  uint64_t at() const { return file_->bytes_written(); }

 private:
  OutputFile* file_;
  uint64_t fail_after_;
};

struct Encoded {
  std::vector<uint8_t> stored;
  uint8_t codec = 0;
  uint64_t raw_hash = 0;
  Status status;
  bool done = false;
};

// Encodes a layer's bundles on worker threads while the caller writes them in order.
// Workers also do the reads (blocking preads), so there are at least kMinWorkers of
// them to keep the drive busy even with one encoder thread; at most `window_` bundles
// (and about kWindowBytes) are in memory at once.
constexpr unsigned kMinWorkers = 6;
constexpr uint64_t kWindowBytes = 512 << 20;

class LayerEncoder {
 public:
  LayerEncoder(const RandomAccessFile& in, const LayerPack& L, unsigned threads)
      : in_(in),
        L_(L),
        n_(static_cast<uint32_t>(L.stacks[0]->ne[2])),
        window_(static_cast<uint32_t>(
            std::clamp<uint64_t>(kWindowBytes / std::max<uint64_t>(1, L.layout.raw_bytes()), 2,
                                 2 * std::max(threads, kMinWorkers)))),
        slots_(window_) {
    const unsigned workers = std::min(std::max(threads, kMinWorkers), window_);
    for (unsigned i = 0; i < workers; ++i) workers_.emplace_back([this] { Work(); });
  }
  ~LayerEncoder() {
    {
      std::lock_guard lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    for (auto& w : workers_) w.join();
  }

  // Blocks until bundle `e` (in order) is encoded; the reference lasts until Done(e).
  Encoded& Wait(uint32_t e) {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return slots_[e % window_].done; });
    return slots_[e % window_];
  }
  void Done(uint32_t e) {
    {
      std::lock_guard lock(mu_);
      slots_[e % window_] = Encoded{};
      written_ = e + 1;
    }
    cv_.notify_all();
  }

 private:
  void Work() {
    std::vector<uint8_t> raw(L_.layout.raw_bytes());
    for (;;) {
      uint32_t e;
      {
        std::unique_lock lock(mu_);
        cv_.wait(lock, [&] { return stop_ || next_ >= n_ || next_ < written_ + window_; });
        if (stop_ || next_ >= n_) return;
        e = next_++;
      }
      Encoded r;
      uint64_t at = 0;
      for (int role = 0; role < 3 && r.status.ok(); ++role) {
        const ByteRange range = L_.stacks[role]->ExpertRange(e);
        r.status = in_.ReadExact(range.offset, range.bytes, raw.data() + at);
        at += range.bytes;
      }
      if (r.status.ok()) {
        r.raw_hash = XXH3_64bits(raw.data(), raw.size());
        r.codec = EncodeBundle(raw, L_.layout, L_.codec, &r.stored);
      }
      r.done = true;
      {
        std::lock_guard lock(mu_);
        slots_[e % window_] = std::move(r);
      }
      cv_.notify_all();
    }
  }

  const RandomAccessFile& in_;
  const LayerPack& L_;
  const uint32_t n_;
  const uint32_t window_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Encoded> slots_;
  uint32_t next_ = 0;
  uint32_t written_ = 0;
  bool stop_ = false;
  std::vector<std::thread> workers_;
};

Status Verify(const std::string& tmp, const std::vector<OutTensor>& out, ProgressBar* progress) {
  STRATA_ASSIGN_OR_RETURN(auto file, OpenFile(tmp));
  STRATA_ASSIGN_OR_RETURN(GgufFile g, ReadGguf(*file));
  if (!g.pack()) return Status::Corruption(tmp + ": verify: the written file has no pack index");
  std::vector<uint8_t> buf, raw;
  for (const OutTensor& t : out) {
    if (InterruptRequested()) return Status::Cancelled(tmp + ": interrupted; no file written");
    if (t.src) {
      const TensorInfo* w = g.FindTensor(t.name);
      if (!w || w->bytes != t.src->bytes) {
        return Status::Corruption(tmp + ": verify: tensor '" + t.name + "' is missing or resized");
      }
      XXH3_state_t* st = XXH3_createState();
      XXH3_64bits_reset(st);
      Status s;
      for (uint64_t off = 0; off < w->bytes && s.ok(); off += kCopyChunk) {
        const uint64_t n = std::min(kCopyChunk, w->bytes - off);
        buf.resize(n);
        s = file->ReadExact(w->file_offset + off, n, buf.data());
        if (s.ok()) XXH3_64bits_update(st, buf.data(), n);
      }
      const uint64_t h = XXH3_64bits_digest(st);
      XXH3_freeState(st);
      STRATA_RETURN_IF_ERROR(s);
      if (h != t.hash) {
        return Status::Corruption(tmp + ": verify: tensor '" + t.name +
                                  "' reads back different from the input");
      }
      if (progress) progress->Advance(w->bytes);
      continue;
    }
    const PackedLayer* L = g.pack()->FindLayer(t.pack->layer);
    if (!L)
      return Status::Corruption(tmp + ": verify: layer " + std::to_string(t.pack->layer) +
                                " is missing from the index");
    raw.resize(L->raw_bytes());
    for (uint32_t e = 0; e < L->n_expert(); ++e) {
      const PackEntry& p = L->entries[e];
      buf.resize(p.stored);
      const std::string where = tmp + ": verify: layer " + std::to_string(L->layer) + " expert " +
                                std::to_string(e) + " at offset " + std::to_string(p.offset);
      STRATA_RETURN_IF_ERROR(file->ReadExact(p.offset, p.stored, buf.data()));
      STRATA_RETURN_IF_ERROR(
          DecodeBundle(p.codec, buf, L->layout, true, p.xxh3, raw).WithContext(where));
      if (XXH3_64bits(raw.data(), raw.size()) != t.pack->raw_hash[e]) {
        return Status::Corruption(where + ": decodes to bytes that differ from the input");
      }
      if (progress) progress->Advance(L->raw_bytes());
    }
  }
  return Status::Ok();
}

bool SameFile(const std::string& a, const std::string& b) {
  struct stat sa {
  }, sb{};
  return ::stat(a.c_str(), &sa) == 0 && ::stat(b.c_str(), &sb) == 0 && sa.st_dev == sb.st_dev &&
         sa.st_ino == sb.st_ino;
}

}  // namespace

std::string BundleClassName(const std::array<GgmlType, 3>& types) {
  if (types[0] == types[1] && types[1] == types[2]) return std::string(TypeName(types[0]));
  return std::string(TypeName(types[0])) + "/" + std::string(TypeName(types[1])) + "/" +
         std::string(TypeName(types[2]));
}

Status CheckPackRequest(const std::string& in_path, const std::string& out_path) {
  if (in_path == out_path || SameFile(in_path, out_path)) {
    return Status::InvalidArgument("pack: OUT '" + out_path + "' is the input file; " +
                                   "choose another path");
  }
  STRATA_ASSIGN_OR_RETURN(GgufFile gguf, ReadGgufFile(in_path));
  if (gguf.pack()) {
    return Status::InvalidArgument(in_path +
                                   ": already packed (strata.pack.version is set); "
                                   "pack the original GGUF instead");
  }
  if (PackableStacks(gguf).empty()) {
    return Status::InvalidArgument(in_path +
                                   ": has no routed-expert stacks "
                                   "(blk.N.ffn_{gate,up,down}_exps.weight) to pack");
  }
  return Status::Ok();
}

Result<PackReport> PackModel(const std::string& in_path, const std::string& out_path,
                             const PackOptions& options, ProgressBar* progress) {
  const auto start = std::chrono::steady_clock::now();
  STRATA_RETURN_IF_ERROR(CheckPackRequest(in_path, out_path));
  STRATA_ASSIGN_OR_RETURN(GgufFile gguf, ReadGgufFile(in_path));
  STRATA_ASSIGN_OR_RETURN(auto in, OpenGgufData(gguf));
  const auto stacks = PackableStacks(gguf);

  std::vector<LayerPack> layers;
  layers.reserve(stacks.size());
  std::map<const TensorInfo*, LayerPack*> pack_of;
  for (const auto& [layer, s] : stacks) {
    LayerPack& L = layers.emplace_back();
    L.layer = layer;
    L.stacks = s;
    for (int r = 0; r < 3; ++r) {
      L.layout.bytes[r] = s[r]->expert_bytes();
      L.layout.group_width[r] = GroupWidth(s[r]->type);
    }
    L.cls = BundleClassName({s[0]->type, s[1]->type, s[2]->type});
    const auto it = options.class_codecs.find(L.cls);
    L.codec = it != options.class_codecs.end() ? it->second : options.codec;
    const size_t n = static_cast<size_t>(s[0]->ne[2]);
    L.codec_byte.assign(n, 0);
    L.offset.assign(n, 0);
    L.stored.assign(n, 0);
    L.xxh3.assign(n, 0);
    L.raw_hash.assign(n, 0);
  }
  for (LayerPack& L : layers) {
    for (const TensorInfo* t : L.stacks) pack_of[t] = &L;
  }

  // Output tensors in the input's data order; a layer's blob takes its first stack's place.
  std::vector<const TensorInfo*> order;
  for (const TensorInfo& t : gguf.tensors()) order.push_back(&t);
  std::stable_sort(order.begin(), order.end(), [](const TensorInfo* a, const TensorInfo* b) {
    return a->file_offset < b->file_offset;
  });
  std::vector<OutTensor> out;
  std::set<const LayerPack*> placed;  // layers whose blob is already in `out`
  uint64_t input_bytes = 0;
  for (const TensorInfo* t : order) {
    input_bytes += t->bytes;
    const auto it = pack_of.find(t);
    if (it == pack_of.end()) {
      out.push_back({t->name, t->type,
                     std::vector<uint64_t>(t->ne.begin(), t->ne.begin() + t->n_dims), 0, t, nullptr,
                     0});
      continue;
    }
    LayerPack* L = it->second;
    if (placed.insert(L).second) {
      out.push_back({PackBlobName(L->layer), GgmlType::kI8, {0}, 0, nullptr, L, 0});
    }
  }

  const uint64_t alignment = gguf.alignment();
  const uint64_t blob_alignment = std::max(alignment, kPackAlignment);
  const std::string header =
      EncodeGgufHeader(PackMetadata(gguf, layers), HeaderTensors(out), alignment);
  uint64_t data_start = 0;
  if (!CheckedAlignUp(header.size(), alignment, &data_start)) {
    return Status::Corruption("pack: header size overflows");
  }

  STRATA_ASSIGN_OR_RETURN(auto file, OutputFile::Create(out_path));
  Writer w(file.get(), options.fail_after_bytes);
  STRATA_RETURN_IF_ERROR(w.PadTo(data_start));
  std::vector<uint8_t> buf;
  for (OutTensor& t : out) {
    uint64_t at = 0;
    if (!CheckedAlignUp(w.at(), t.pack ? blob_alignment : alignment, &at)) {
      return Status::Corruption("pack: offset overflows");
    }
    STRATA_RETURN_IF_ERROR(w.PadTo(at));
    t.offset = at - data_start;
    if (t.src) {
      XXH3_state_t* st = XXH3_createState();
      XXH3_64bits_reset(st);
      Status s;
      for (uint64_t off = 0; off < t.src->bytes && s.ok(); off += kCopyChunk) {
        const uint64_t n = std::min(kCopyChunk, t.src->bytes - off);
        buf.resize(n);
        s = in->ReadExact(t.src->file_offset + off, n, buf.data());
        if (s.ok()) s = w.Append(buf.data(), n);
        if (s.ok()) XXH3_64bits_update(st, buf.data(), n);
        if (s.ok() && progress) progress->Advance(n);
      }
      t.hash = XXH3_64bits_digest(st);
      XXH3_freeState(st);
      STRATA_RETURN_IF_ERROR(s);
      continue;
    }
    LayerPack& L = *t.pack;
    const uint64_t blob_start = w.at();
    // Bundles (and the blob's end) sit at multiples of 4 KiB from the blob's start.
    auto pad_in_blob = [&] {
      return w.PadTo(blob_start +
                     (w.at() - blob_start + kPackAlignment - 1) / kPackAlignment * kPackAlignment);
    };
    LayerEncoder encoder(*in, L, std::max(1u, options.threads));
    for (uint32_t e = 0; e < L.codec_byte.size(); ++e) {
      Encoded& r = encoder.Wait(e);
      if (!r.status.ok()) {
        return r.status.WithContext("pack: layer " + std::to_string(L.layer) + " expert " +
                                    std::to_string(e));
      }
      STRATA_RETURN_IF_ERROR(pad_in_blob());
      L.offset[e] = w.at() - blob_start;
      L.stored[e] = r.stored.size();
      L.codec_byte[e] = r.codec;
      L.xxh3[e] = BundleChecksum(r.stored);
      L.raw_hash[e] = r.raw_hash;
      STRATA_RETURN_IF_ERROR(w.Append(r.stored.data(), r.stored.size()));
      if (progress) progress->Advance(L.layout.raw_bytes());
      encoder.Done(e);
    }
    STRATA_RETURN_IF_ERROR(pad_in_blob());
    t.ne = {w.at() - blob_start};
  }
  const std::string final_header =
      EncodeGgufHeader(PackMetadata(gguf, layers), HeaderTensors(out), alignment);
  if (final_header.size() != header.size()) {
    return Status::Corruption("pack: the header changed size (" + std::to_string(header.size()) +
                              " -> " + std::to_string(final_header.size()) + ")");
  }
  STRATA_RETURN_IF_ERROR(file->WriteAt(0, final_header.data(), final_header.size()));
  STRATA_RETURN_IF_ERROR(file->Flush());

  PackReport report;
  report.input_bytes = input_bytes;
  report.output_bytes = file->bytes_written();
  report.layers = layers.size();
  for (const LayerPack& L : layers) {
    PackClassStats& c = report.classes[L.cls];
    c.codec = L.codec.ToString();
    for (size_t e = 0; e < L.stored.size(); ++e) {
      ++c.bundles;
      c.compressed_bundles += L.codec_byte[e] != 0;
      c.raw_bytes += L.layout.raw_bytes();
      c.stored_bytes += L.stored[e];
    }
  }
  report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (progress) progress->Finish();
  if (options.verify) {
    const auto vstart = std::chrono::steady_clock::now();
    ProgressBar vbar("verify", input_bytes, progress != nullptr);
    STRATA_RETURN_IF_ERROR(Verify(file->tmp_path(), out, progress ? &vbar : nullptr));
    if (progress) vbar.Finish();
    report.verify_seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - vstart).count();
  }
  if (InterruptRequested()) return Status::Cancelled(out_path + ": interrupted; no file written");
  STRATA_RETURN_IF_ERROR(file->Commit());
  return report;
}

}  // namespace strata::storage

#include "storage/gguf_writer.h"

#include <cassert>
#include <cstring>
#include <unordered_set>

#include "storage/gguf.h"
#include "storage/output_file.h"
#include "util/cancel.h"
#include "util/checked_math.h"
#include "util/progress.h"

namespace strata::storage {
namespace {

template <typename T>
void AppendPod(std::string* out, T v) {
  char buf[sizeof(T)];
  std::memcpy(buf, &v, sizeof(T));
  out->append(buf, sizeof(T));
}

void AppendString(std::string* out, const std::string& s) {
  AppendPod<uint64_t>(out, s.size());
  out->append(s);
}

// Counts and forwards a producer's bytes, checking it never writes past its tensor
// and polling for Ctrl-C between writes.
class CountingSink final : public ByteSink {
 public:
  CountingSink(OutputFile* file, uint64_t limit, const std::string& tensor, ProgressBar* progress)
      : file_(file), limit_(limit), tensor_(tensor), progress_(progress) {}

  Status Write(const void* data, size_t n) override {
    if (InterruptRequested()) {
      return Status::Cancelled(file_->path() + ": interrupted; no file written");
    }
    if (n > limit_ - written_) {
      return Status::InvalidArgument("tensor '" + tensor_ + "': producer wrote more than its " +
                                     std::to_string(limit_) + " bytes");
    }
    STRATA_RETURN_IF_ERROR(file_->Append(data, n));
    written_ += n;
    if (progress_) progress_->Advance(n);
    return Status::Ok();
  }
  uint64_t written() const { return written_; }

 private:
  OutputFile* file_;
  uint64_t limit_;
  const std::string& tensor_;
  ProgressBar* progress_;
  uint64_t written_ = 0;
};

}  // namespace

void EncodeGgufValue(const GgufValue& value, std::string* out) {
  switch (value.type()) {
    case GgufType::kU8:
      AppendPod<uint8_t>(out, static_cast<uint8_t>(*value.AsUnsigned()));
      break;
    case GgufType::kU16:
      AppendPod<uint16_t>(out, static_cast<uint16_t>(*value.AsUnsigned()));
      break;
    case GgufType::kU32:
      AppendPod<uint32_t>(out, static_cast<uint32_t>(*value.AsUnsigned()));
      break;
    case GgufType::kU64:
      AppendPod<uint64_t>(out, *value.AsUnsigned());
      break;
    case GgufType::kI8:
      AppendPod<int8_t>(out, static_cast<int8_t>(*value.AsSigned()));
      break;
    case GgufType::kI16:
      AppendPod<int16_t>(out, static_cast<int16_t>(*value.AsSigned()));
      break;
    case GgufType::kI32:
      AppendPod<int32_t>(out, static_cast<int32_t>(*value.AsSigned()));
      break;
    case GgufType::kI64:
      AppendPod<int64_t>(out, *value.AsSigned());
      break;
    case GgufType::kF32:
      AppendPod<float>(out, static_cast<float>(*value.AsFloat()));
      break;
    case GgufType::kF64:
      AppendPod<double>(out, *value.AsFloat());
      break;
    case GgufType::kBool:
      AppendPod<uint8_t>(out, *value.AsBool() ? 1 : 0);
      break;
    case GgufType::kString:
      AppendString(out, *value.AsString());
      break;
    case GgufType::kArray:
      AppendPod<uint32_t>(out, static_cast<uint32_t>(value.elem_type()));
      AppendPod<uint64_t>(out, value.items().size());
      for (const GgufValue& item : value.items()) EncodeGgufValue(item, out);
      break;
  }
}

GgufWriter::GgufWriter(uint64_t alignment) : alignment_(alignment) {
  assert(IsPowerOfTwo(alignment) && "GGUF alignment must be a power of two");
}

void GgufWriter::AddMetadata(std::string key, GgufValue value) {
  for ([[maybe_unused]] const auto& kv : metadata_) assert(kv.first != key && "duplicate key");
  metadata_.emplace_back(std::move(key), std::move(value));
}

Status GgufWriter::AddTensor(std::string name, GgmlType type, std::vector<uint64_t> ne,
                             Producer producer) {
  if (ne.empty() || ne.size() > kGgmlMaxDims) {
    return Status::InvalidArgument("tensor '" + name + "': needs 1 to 4 dimensions");
  }
  for (const auto& t : tensors_) {
    if (t.name == name) return Status::InvalidArgument("duplicate tensor '" + name + "'");
  }
  auto row = RowBytes(type, ne[0]);
  if (!row) {
    return Status::InvalidArgument("tensor '" + name + "': ne[0] = " + std::to_string(ne[0]) +
                                   " is not a multiple of the " + std::string(TypeName(type)) +
                                   " block");
  }
  uint64_t bytes = *row;
  for (size_t d = 1; d < ne.size(); ++d) {
    if (!CheckedMul(bytes, ne[d], &bytes)) {
      return Status::InvalidArgument("tensor '" + name + "': size overflows");
    }
  }
  uint64_t offset;
  if (!CheckedAlignUp(data_bytes_, alignment_, &offset)) {
    return Status::InvalidArgument("data section overflows");
  }
  data_bytes_ = offset + bytes;
  tensors_.push_back({std::move(name), type, std::move(ne), offset, bytes, std::move(producer)});
  return Status::Ok();
}

std::string EncodeGgufHeader(const std::vector<std::pair<std::string, GgufValue>>& metadata,
                             const std::vector<HeaderTensor>& tensors, uint64_t alignment) {
  std::string header;
  AppendPod<uint32_t>(&header, kGgufMagic);
  AppendPod<uint32_t>(&header, 3);
  AppendPod<uint64_t>(&header, tensors.size());
  bool has_alignment_key = false;
  for (const auto& kv : metadata) has_alignment_key |= kv.first == "general.alignment";
  const bool add_alignment_key = !has_alignment_key && alignment != kGgufDefaultAlignment;
  AppendPod<uint64_t>(&header, metadata.size() + (add_alignment_key ? 1 : 0));
  auto encode_kv = [&](const std::string& key, const GgufValue& value) {
    AppendString(&header, key);
    AppendPod<uint32_t>(&header, static_cast<uint32_t>(value.type()));
    EncodeGgufValue(value, &header);
  };
  if (add_alignment_key) {
    encode_kv("general.alignment", GgufValue::U32(static_cast<uint32_t>(alignment)));
  }
  for (const auto& [key, value] : metadata) encode_kv(key, value);
  for (const auto& t : tensors) {
    AppendString(&header, t.name);
    AppendPod<uint32_t>(&header, static_cast<uint32_t>(t.ne.size()));
    for (uint64_t n : t.ne) AppendPod<uint64_t>(&header, n);
    AppendPod<uint32_t>(&header, static_cast<uint32_t>(t.type));
    AppendPod<uint64_t>(&header, t.offset);
  }
  return header;
}

Result<std::vector<std::string>> GgufWriter::WriteSplitTo(const std::string& path, uint64_t max_shard_bytes,
                                                          ProgressBar* progress) {
  if (tensors_.empty()) return Status::InvalidArgument(path + ": a split set needs at least one tensor");
  // Which tensors go to which shard.
  std::vector<size_t> first_of_shard = {0};
  uint64_t shard_bytes = 0;
  for (size_t i = 0; i < tensors_.size(); ++i) {
    const uint64_t padded = (tensors_[i].bytes + alignment_ - 1) / alignment_ * alignment_;
    if (i > first_of_shard.back() && shard_bytes + padded > max_shard_bytes) {
      first_of_shard.push_back(i);
      shard_bytes = 0;
    }
    shard_bytes += padded;
  }
  const size_t count = first_of_shard.size();
  if (count > 65535) return Status::InvalidArgument(path + ": more than 65535 shards; raise the shard size");
  std::string prefix = path;
  if (prefix.size() > 5 && prefix.compare(prefix.size() - 5, 5, ".gguf") == 0) prefix.resize(prefix.size() - 5);
  std::vector<std::unique_ptr<OutputFile>> files;
  std::vector<std::string> paths;
  for (size_t s = 0; s < count; ++s) {
    const size_t begin = first_of_shard[s], end = s + 1 < count ? first_of_shard[s + 1] : tensors_.size();
    std::vector<std::pair<std::string, GgufValue>> md;
    if (s == 0) md = metadata_;
    md.emplace_back("split.no", GgufValue::Unsigned(GgufType::kU16, s));
    md.emplace_back("split.count", GgufValue::Unsigned(GgufType::kU16, count));
    md.emplace_back("split.tensors.count", GgufValue::I32(static_cast<int32_t>(tensors_.size())));
    std::vector<HeaderTensor> infos;
    uint64_t offset = 0;
    for (size_t i = begin; i < end; ++i) {
      infos.push_back({tensors_[i].name, tensors_[i].type, tensors_[i].ne, offset});
      offset += (tensors_[i].bytes + alignment_ - 1) / alignment_ * alignment_;
    }
    const std::string header = EncodeGgufHeader(md, infos, alignment_);
    paths.push_back(ShardPath(prefix, static_cast<uint32_t>(s + 1), static_cast<uint32_t>(count)));
    STRATA_ASSIGN_OR_RETURN(auto file, OutputFile::Create(paths.back()));
    STRATA_RETURN_IF_ERROR(file->Append(header.data(), header.size()));
    uint64_t data_start;
    if (!CheckedAlignUp(header.size(), alignment_, &data_start)) return Status::InvalidArgument("header too large");
    STRATA_RETURN_IF_ERROR(file->AppendZeros(data_start - header.size()));
    for (size_t i = begin; i < end; ++i) {
      PendingTensor& t = tensors_[i];
      STRATA_RETURN_IF_ERROR(file->AppendZeros(data_start + infos[i - begin].offset - file->bytes_written()));
      CountingSink sink(file.get(), t.bytes, t.name, progress);
      STRATA_RETURN_IF_ERROR(t.producer(sink));
      if (sink.written() != t.bytes) {
        return Status::InvalidArgument("tensor '" + t.name + "': producer wrote " + std::to_string(sink.written()) +
                                       " of " + std::to_string(t.bytes) + " bytes");
      }
      t.producer = nullptr;
    }
    files.push_back(std::move(file));
  }
  if (InterruptRequested()) return Status::Cancelled(path + ": interrupted; no file written");
  for (auto& f : files) STRATA_RETURN_IF_ERROR(f->Commit());
  return paths;
}

Status GgufWriter::WriteTo(const std::string& path, ProgressBar* progress) {
  std::vector<HeaderTensor> infos;
  for (const auto& t : tensors_) infos.push_back({t.name, t.type, t.ne, t.offset});
  const std::string header = EncodeGgufHeader(metadata_, infos, alignment_);

  STRATA_ASSIGN_OR_RETURN(auto file, OutputFile::Create(path));
  STRATA_RETURN_IF_ERROR(file->Append(header.data(), header.size()));
  uint64_t data_start;
  if (!CheckedAlignUp(header.size(), alignment_, &data_start)) {
    return Status::InvalidArgument("header too large");
  }
  STRATA_RETURN_IF_ERROR(file->AppendZeros(data_start - header.size()));

  for (auto& t : tensors_) {
    const uint64_t pad = data_start + t.offset - file->bytes_written();
    STRATA_RETURN_IF_ERROR(file->AppendZeros(pad));
    CountingSink sink(file.get(), t.bytes, t.name, progress);
    STRATA_RETURN_IF_ERROR(t.producer(sink));
    if (sink.written() != t.bytes) {
      return Status::InvalidArgument("tensor '" + t.name + "': producer wrote " +
                                     std::to_string(sink.written()) + " of " +
                                     std::to_string(t.bytes) + " bytes");
    }
    t.producer = nullptr;  // release whatever the producer captured
  }
  if (InterruptRequested()) return Status::Cancelled(path + ": interrupted; no file written");
  return file->Commit();
}

}  // namespace strata::storage

#include "engine/model_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "util/huge_pages.h"
#include "util/log.h"
#include "util/progress.h"

namespace strata::engine {
namespace {

std::string Shape(const std::vector<uint64_t>& ne) {
  std::string s = "[";
  for (size_t i = 0; i < ne.size(); ++i) s += (i ? ", " : "") + std::to_string(ne[i]);
  return s + "]";
}

// A packed stack, decoded bundle by bundle out of its layer's blob (tests and full
// loads; the expert cache reads bundles itself).
Status ReadPackedStack(const storage::RandomAccessFile& file, const storage::PackIndex& pack,
                       const storage::TensorInfo& t, uint8_t* dst) {
  const auto [L, role] = pack.FindStack(t.name);
  if (!L) return Status::Corruption(file.path() + ": '" + t.name + "' is not in the pack index");
  std::vector<uint8_t> stored, raw(L->raw_bytes());
  uint64_t part = 0;
  for (int r = 0; r < role; ++r) part += L->layout.bytes[r];
  const uint64_t n = L->layout.bytes[role];
  for (uint32_t e = 0; e < L->n_expert(); ++e) {
    const storage::PackEntry& p = L->entries[e];
    stored.resize(p.stored);
    STRATA_RETURN_IF_ERROR(file.ReadExact(p.offset, p.stored, stored.data()));
    STRATA_RETURN_IF_ERROR(storage::DecodeBundle(p.codec, stored, L->layout, true, p.xxh3, raw)
                               .WithContext(file.path() + ": layer " + std::to_string(L->layer) +
                                            " expert " + std::to_string(e) + " (bundle at offset " +
                                            std::to_string(p.offset) + ")"));
    std::memcpy(dst + e * n, raw.data() + part, n);
  }
  return Status::Ok();
}

}  // namespace

Result<std::unique_ptr<ModelFile>> ModelFile::Open(const std::string& path) {
  return Open(path, Options{});
}

ModelFile::~ModelFile() {
  if (mapping_) ::munmap(const_cast<uint8_t*>(mapping_), mapping_bytes_);
}

Result<std::unique_ptr<ModelFile>> ModelFile::Open(const std::string& path,
                                                   const Options& options) {
  STRATA_ASSIGN_OR_RETURN(storage::GgufFile gguf, storage::ReadGgufFile(path));
  STRATA_ASSIGN_OR_RETURN(auto file, storage::OpenGgufData(gguf, options.read_fn));
  auto model = std::unique_ptr<ModelFile>(new ModelFile());
  model->gguf_ = std::move(gguf);
  if (options.mmap) {
    STRATA_ASSIGN_OR_RETURN(const storage::Mapping m, storage::MapFiles(storage::FileExtentsOf(model->gguf_)));
    model->mapping_ = m.data;
    model->mapping_bytes_ = m.bytes;
    return model;
  }
  for (const storage::TensorInfo& t : model->gguf_.tensors()) {
    if (storage::IsPackBlobName(t.name)) continue;  // its stacks are loaded by name
    if (options.load && !options.load(t)) continue;
    uint8_t* buf = AllocateWeights(t.bytes);
    if (!buf) {
      return Status::ResourceExhausted(path + ": out of memory loading tensor '" + t.name + "' (" +
                                       std::to_string(t.bytes) + " bytes)");
    }
    model->data_[t.name].reset(buf);
    if (t.packed) {
      STRATA_RETURN_IF_ERROR(ReadPackedStack(*file, *model->gguf_.pack(), t, buf));
    } else {
      STRATA_RETURN_IF_ERROR(file->ReadExact(t.file_offset, t.bytes, buf));
    }
    model->resident_bytes_ += t.bytes;
    if (options.progress) options.progress->Advance(t.bytes);
  }
  Log(LogModule::kEngine)
      .debug("{}: loaded {} tensors, {} bytes", path, model->gguf_.tensors().size(),
             model->resident_bytes_);
  return model;
}

const uint8_t* ModelFile::Data(const std::string& name) const {
  if (mapping_) {
    const storage::TensorInfo* t = gguf_.FindTensor(name);
    return t && !t->packed ? mapping_ + t->file_offset : nullptr;
  }
  auto it = data_.find(name);
  return it == data_.end() ? nullptr : it->second.get();
}

void ModelFile::Release(const std::string& name) {
  auto it = data_.find(name);
  if (it == data_.end()) return;
  if (const storage::TensorInfo* t = gguf_.FindTensor(name)) resident_bytes_ -= t->bytes;
  data_.erase(it);
}

Result<kernels::WeightMatrix> ModelFile::Matrix(const std::string& name,
                                                std::vector<uint64_t> expected_ne) const {
  STRATA_ASSIGN_OR_RETURN(kernels::WeightMatrix m, RowTable(name, std::move(expected_ne)));
  if (!kernels::HasDot(m.type)) {
    return Status::Unsupported(path() + ": tensor '" + name + "' has type " +
                               std::string(storage::TypeName(m.type)) +
                               ", which strata cannot compute with yet");
  }
  return m;
}

Result<kernels::WeightMatrix> ModelFile::RowTable(const std::string& name,
                                                  std::vector<uint64_t> expected_ne) const {
  const storage::TensorInfo* t = gguf_.FindTensor(name);
  if (!t) return Status::NotFound(path() + ": missing tensor '" + name + "'");
  std::vector<uint64_t> ne(t->ne.begin(), t->ne.begin() + t->n_dims);
  while (expected_ne.size() < ne.size()) expected_ne.push_back(1);
  while (ne.size() < expected_ne.size()) ne.push_back(1);
  if (ne != expected_ne) {
    return Status::Corruption(path() + ": tensor '" + name + "' has shape " + t->ShapeString() +
                              " but the model's metadata implies " + Shape(expected_ne));
  }
  return kernels::WeightMatrix{t->type, static_cast<int64_t>(t->ne[0]),
                               static_cast<int64_t>(t->ne[1] * t->ne[2] * t->ne[3]), Data(name),
                               static_cast<size_t>(t->row_bytes())};
}

Result<const float*> ModelFile::Vector(const std::string& name, uint64_t n) const {
  const storage::TensorInfo* t = gguf_.FindTensor(name);
  if (!t) return Status::NotFound(path() + ": missing tensor '" + name + "'");
  if (t->type != storage::GgmlType::kF32 || t->n_elements() != n) {
    return Status::Corruption(path() + ": tensor '" + name + "' should be F32 with " +
                              std::to_string(n) + " values, found " +
                              std::string(storage::TypeName(t->type)) + " " + t->ShapeString());
  }
  return reinterpret_cast<const float*>(Data(name));
}

}  // namespace strata::engine

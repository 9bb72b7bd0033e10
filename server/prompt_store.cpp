#include "server/prompt_store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "storage/gguf_writer.h"
#include "util/log.h"

namespace strata::server {
namespace {

namespace fs = std::filesystem;

constexpr char kMagic[8] = {'S', 'T', 'R', 'A', 'T', 'A', 'P', 'C'};
constexpr uint32_t kVersion = 1;
constexpr const char* kSuffix = ".strata-prompt";
// Bumped when engine::Session::SaveSequence's layout changes: old entries then belong
// to another key and are left alone.
constexpr uint64_t kStateFormat = 1;

struct Header {
  char magic[8];
  uint32_t version;
  uint32_t reserved;
  uint64_t model_key;
  uint64_t n_tokens;
  uint64_t token_hash;
  uint64_t state_bytes;
  uint64_t checksum;  // XXH3 of the tokens' bytes then the state's
};
static_assert(sizeof(Header) == 56);

std::string Hex(uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

uint64_t Checksum(std::span<const int32_t> tokens, std::span<const uint8_t> state) {
  XXH3_state_t* s = XXH3_createState();
  XXH3_64bits_reset(s);
  XXH3_64bits_update(s, tokens.data(), tokens.size_bytes());
  XXH3_64bits_update(s, state.data(), state.size());
  const uint64_t h = XXH3_64bits_digest(s);
  XXH3_freeState(s);
  return h;
}

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

int64_t MtimeNs(const struct stat& st) {
  return int64_t{st.st_mtim.tv_sec} * 1000000000 + st.st_mtim.tv_nsec;
}

Status WriteAll(int fd, const void* data, size_t n, const std::string& path) {
  const auto* p = static_cast<const uint8_t*>(data);
  while (n > 0) {
    const ssize_t w = ::write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return Status::IOError(path + ": " + std::strerror(errno));
    }
    p += w;
    n -= static_cast<size_t>(w);
  }
  return Status::Ok();
}

bool ReadAll(int fd, void* data, size_t n) {
  auto* p = static_cast<uint8_t*>(data);
  while (n > 0) {
    const ssize_t r = ::read(fd, p, n);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    p += r;
    n -= static_cast<size_t>(r);
  }
  return true;
}

}  // namespace

uint64_t HashTokens(std::span<const int32_t> tokens) {
  return XXH3_64bits(tokens.data(), tokens.size_bytes());
}

uint64_t PromptStoreModelKey(const storage::GgufFile& file,
                             const std::function<const uint8_t*(const std::string&)>& resident,
                             storage::GgmlType kv_type) {
  XXH3_state_t* s = XXH3_createState();
  XXH3_64bits_reset(s);
  auto add = [&](const void* p, size_t n) { XXH3_64bits_update(s, p, n); };
  add(&kStateFormat, sizeof kStateFormat);
  const auto kv = static_cast<uint32_t>(kv_type);
  add(&kv, sizeof kv);
  std::string value;
  for (const auto& [key, v] : file.metadata()) {
    add(key.data(), key.size());
    value.clear();
    storage::EncodeGgufValue(v, &value);
    add(value.data(), value.size());
  }
  for (const storage::TensorInfo& t : file.tensors()) {
    add(t.name.data(), t.name.size());
    add(&t.type, sizeof t.type);
    add(t.ne.data(), sizeof t.ne);
    add(&t.bytes, sizeof t.bytes);
    if (const uint8_t* data = resident(t.name)) {
      const size_t n = static_cast<size_t>(std::min<uint64_t>(t.bytes, 4096));
      add(data, n);
      add(data + t.bytes - n, n);
    }
  }
  const uint64_t h = XXH3_64bits_digest(s);
  XXH3_freeState(s);
  return h;
}

Result<std::unique_ptr<PromptStore>> PromptStore::Open(const PromptStoreOptions& options) {
  std::error_code ec;
  fs::create_directories(options.dir, ec);
  if (ec || !fs::is_directory(options.dir)) {
    return Status::IOError("--prompt-cache-dir " + options.dir + ": cannot create the directory" +
                           (ec ? " (" + ec.message() + ")" : ""));
  }
  if (::access(options.dir.c_str(), R_OK | W_OK | X_OK) != 0) {
    return Status::IOError("--prompt-cache-dir " + options.dir + ": " + std::strerror(errno));
  }
  std::unique_ptr<PromptStore> store(new PromptStore(options));
  store->Scan();
  store->writer_ = std::thread([s = store.get()] { s->Writer(); });
  return store;
}

PromptStore::PromptStore(PromptStoreOptions options) : options_(std::move(options)) {}

PromptStore::~PromptStore() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  queued_.notify_all();
  if (writer_.joinable()) writer_.join();
}

std::string PromptStore::PathFor(uint64_t hash) const {
  return (fs::path(options_.dir) / (Hex(options_.model_key) + "-" + Hex(hash) + kSuffix)).string();
}

void PromptStore::Scan() {
  const std::string prefix = Hex(options_.model_key) + "-";
  std::error_code ec;
  for (const fs::directory_entry& e : fs::directory_iterator(options_.dir, ec)) {
    const std::string name = e.path().filename().string();
    if (!name.starts_with(prefix)) continue;
    // A writer that died left its temporary file; it is never an entry.
    if (name.find(".tmp.") != std::string::npos) {
      std::error_code ignored;
      fs::remove(e.path(), ignored);
      continue;
    }
    if (!name.ends_with(kSuffix)) continue;
    const int fd = ::open(e.path().c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) continue;
    Header h{};
    struct stat st {};
    const bool ok = ReadAll(fd, &h, sizeof h) && ::fstat(fd, &st) == 0 &&
                    std::memcmp(h.magic, kMagic, sizeof kMagic) == 0 && h.version == kVersion &&
                    h.model_key == options_.model_key && h.n_tokens > 0 &&
                    uint64_t(st.st_size) == sizeof h + h.n_tokens * 4 + h.state_bytes &&
                    e.path() == PathFor(h.token_hash);
    ::close(fd);
    if (!ok) {
      std::error_code ignored;
      fs::remove(e.path(), ignored);
      ++stats_.bad_files;
      continue;
    }
    entries_[h.token_hash] = {e.path().string(), h.n_tokens, uint64_t(st.st_size), MtimeNs(st)};
    lengths_.insert(h.n_tokens);
  }
  std::lock_guard lock(mu_);
  EvictLocked();  // the budget may be smaller than last time
}

std::optional<PromptStore::Hit> PromptStore::Find(std::span<const int32_t> prompt,
                                                  size_t more_than, size_t at_most) {
  at_most = std::min(at_most, prompt.size());
  // Candidates, longest first: the prefixes whose length some entry has and whose
  // hash it has too.
  std::vector<std::pair<uint64_t, uint64_t>> candidates;  // (length, hash)
  {
    std::lock_guard lock(mu_);
    if (entries_.empty()) {
      ++stats_.misses;
      return std::nullopt;
    }
    XXH3_state_t* s = XXH3_createState();
    XXH3_64bits_reset(s);
    size_t done = 0;
    for (auto it = lengths_.upper_bound(more_than); it != lengths_.end() && *it <= at_most;
         it = lengths_.upper_bound(*it)) {
      XXH3_64bits_update(s, prompt.data() + done, (*it - done) * sizeof(int32_t));
      done = *it;
      const uint64_t h = XXH3_64bits_digest(s);
      const auto e = entries_.find(h);
      if (e != entries_.end() && e->second.n_tokens == done) candidates.emplace_back(done, h);
    }
    XXH3_freeState(s);
  }
  std::reverse(candidates.begin(), candidates.end());
  for (const auto& [length, hash] : candidates) {
    std::string path;
    {
      std::lock_guard lock(mu_);
      const auto e = entries_.find(hash);
      if (e == entries_.end()) continue;  // evicted meanwhile
      path = e->second.path;
    }
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    Header h{};
    std::vector<int32_t> tokens;
    Hit hit;
    bool ok = fd >= 0 && ReadAll(fd, &h, sizeof h) &&
              std::memcmp(h.magic, kMagic, sizeof kMagic) == 0 && h.version == kVersion &&
              h.model_key == options_.model_key && h.n_tokens == length && h.token_hash == hash &&
              h.state_bytes < (uint64_t{1} << 40);
    if (ok) {
      tokens.resize(length);
      hit.state.resize(h.state_bytes);
      ok = ReadAll(fd, tokens.data(), length * sizeof(int32_t)) &&
           ReadAll(fd, hit.state.data(), hit.state.size()) &&
           Checksum(tokens, hit.state) == h.checksum &&
           std::equal(tokens.begin(), tokens.end(), prompt.begin());
    }
    if (fd >= 0) ::close(fd);
    std::lock_guard lock(mu_);
    if (!ok) {
      Log(LogModule::kTools).warn("prompt cache: {} failed its checks; deleted", path);
      ++stats_.bad_files;
      DropLocked(hash);
      continue;
    }
    // Most recently used now, here and for the next server.
    const auto e = entries_.find(hash);
    if (e != entries_.end()) e->second.last_used = NowNs();
    ::utimensat(AT_FDCWD, path.c_str(), nullptr, 0);
    ++stats_.hits;
    stats_.hit_tokens += length;
    hit.tokens = length;
    return hit;
  }
  std::lock_guard lock(mu_);
  ++stats_.misses;
  return std::nullopt;
}

bool PromptStore::Contains(std::span<const int32_t> tokens) const {
  const uint64_t h = HashTokens(tokens);
  std::lock_guard lock(mu_);
  const auto e = entries_.find(h);
  return pending_.count(h) || (e != entries_.end() && e->second.n_tokens == tokens.size());
}

void PromptStore::Put(std::vector<int32_t> tokens, std::vector<uint8_t> state) {
  if (tokens.empty()) return;
  const uint64_t h = HashTokens(tokens);
  {
    std::lock_guard lock(mu_);
    if (entries_.count(h) || pending_.count(h)) return;
    // Each queued write holds a copy of a sequence's state: two at most.
    if (queue_.size() >= 2) {
      ++stats_.skipped;
      return;
    }
    pending_.insert(h);
    queue_.push_back({std::move(tokens), std::move(state), h});
  }
  queued_.notify_all();
}

void PromptStore::Flush() {
  std::unique_lock lock(mu_);
  drained_.wait(lock, [&] { return queue_.empty() && !writing_; });
}

PromptStoreStats PromptStore::stats() const {
  std::lock_guard lock(mu_);
  PromptStoreStats s = stats_;
  s.entries = entries_.size();
  s.bytes = 0;
  for (const auto& [h, e] : entries_) s.bytes += e.bytes;
  return s;
}

void PromptStore::Writer() {
  std::unique_lock lock(mu_);
  while (true) {
    queued_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
    if (queue_.empty()) return;  // stopping, everything written
    Write w = std::move(queue_.front());
    queue_.pop_front();
    writing_ = true;
    lock.unlock();
    Entry entry;
    const uint64_t size = sizeof(Header) + w.tokens.size() * sizeof(int32_t) + w.state.size();
    Status s = size > options_.max_bytes ? Status::ResourceExhausted("larger than the budget")
                                         : WriteEntry(w, &entry);
    lock.lock();
    writing_ = false;
    pending_.erase(w.hash);
    if (s.ok()) {
      entries_[w.hash] = entry;
      lengths_.insert(entry.n_tokens);
      ++stats_.writes;
      stats_.bytes_written += entry.bytes;
      EvictLocked();
    } else if (s.code() != StatusCode::kResourceExhausted) {
      Log(LogModule::kTools).warn("prompt cache: {}", s.ToString());
    }
    drained_.notify_all();
  }
}

Status PromptStore::WriteEntry(const Write& w, Entry* entry) {
  Header h{};
  std::memcpy(h.magic, kMagic, sizeof kMagic);
  h.version = kVersion;
  h.model_key = options_.model_key;
  h.n_tokens = w.tokens.size();
  h.token_hash = w.hash;
  h.state_bytes = w.state.size();
  h.checksum = Checksum(w.tokens, w.state);
  const std::string path = PathFor(w.hash);
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return Status::IOError(tmp + ": " + std::strerror(errno));
  Status s = WriteAll(fd, &h, sizeof h, tmp);
  if (s.ok()) s = WriteAll(fd, w.tokens.data(), w.tokens.size() * sizeof(int32_t), tmp);
  if (s.ok()) s = WriteAll(fd, w.state.data(), w.state.size(), tmp);
  if (s.ok() && ::fsync(fd) != 0) s = Status::IOError(tmp + ": fsync: " + std::strerror(errno));
  ::close(fd);
  if (s.ok() && ::rename(tmp.c_str(), path.c_str()) != 0) {
    s = Status::IOError(path + ": rename: " + std::strerror(errno));
  }
  if (!s.ok()) {
    ::unlink(tmp.c_str());
    return s;
  }
  *entry = {path, w.tokens.size(), sizeof h + w.tokens.size() * sizeof(int32_t) + w.state.size(),
            NowNs()};
  return Status::Ok();
}

void PromptStore::EvictLocked() {
  uint64_t total = 0;
  for (const auto& [h, e] : entries_) total += e.bytes;
  while (total > options_.max_bytes && !entries_.empty()) {
    const auto oldest = std::min_element(entries_.begin(), entries_.end(), [](const auto& a, const auto& b) {
      return a.second.last_used < b.second.last_used;
    });
    total -= oldest->second.bytes;
    ++stats_.evictions;
    DropLocked(oldest->first);
  }
}

void PromptStore::DropLocked(uint64_t hash) {
  const auto e = entries_.find(hash);
  if (e == entries_.end()) return;
  ::unlink(e->second.path.c_str());
  lengths_.erase(lengths_.find(e->second.n_tokens));
  entries_.erase(e);
}

}  // namespace strata::server

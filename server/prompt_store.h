// serve's prompt cache on disk (--prompt-cache-dir): the state of a slot's sequence
// after a generation, saved under a key made of the model's identity and the hash of
// its tokens, so that a later request, or a restarted server, whose prompt starts with
// those tokens loads the state instead of prefilling them.
//
// One file per entry, DIR/MODELKEY-TOKENHASH.strata-prompt: a header (magic, version,
// model key, token count, token hash, state size, XXH3 checksum of tokens and state),
// the tokens, then the state (engine::Session::SaveSequence). Written to a temporary
// name, flushed and renamed, so a reader never sees half an entry; a file that fails
// its checks when loaded is deleted and counted, never trusted. A byte budget bounds
// the directory's entries of this model; the least recently used go first (a hit
// touches the file, so the order survives restarts). Files of other models are left
// alone. Writes happen on a background thread. Thread-safe.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "storage/gguf.h"
#include "util/status.h"

namespace strata::server {

struct PromptStoreOptions {
  std::string dir;
  uint64_t max_bytes = 8ull << 30;  // this model's entries in the directory
  uint64_t model_key = 0;           // PromptStoreModelKey()
};

struct PromptStoreStats {
  uint64_t entries = 0, bytes = 0;  // now, this model's
  uint64_t hits = 0, hit_tokens = 0;  // lookups that loaded a prefix; its tokens
  uint64_t misses = 0;
  uint64_t writes = 0, bytes_written = 0;
  uint64_t evictions = 0;
  uint64_t skipped = 0;    // not stored: two writes were already queued
  uint64_t bad_files = 0;  // failed a check when read (deleted)
};

// The identity a prompt cache entry belongs to: the file's metadata and tensor layout,
// the first and last 4 KiB of every tensor held in RAM (`resident(name)`: its bytes, or
// null), and the KV type and architecture-dependent state format version.
uint64_t PromptStoreModelKey(const storage::GgufFile& file,
                             const std::function<const uint8_t*(const std::string&)>& resident,
                             storage::GgmlType kv_type);

class PromptStore {
 public:
  // Creates the directory if needed and indexes this model's entries in it. Errors:
  // a directory that cannot be created or read.
  static Result<std::unique_ptr<PromptStore>> Open(const PromptStoreOptions& options);
  ~PromptStore();  // finishes the queued writes

  struct Hit {
    size_t tokens = 0;           // the prompt's first `tokens` tokens
    std::vector<uint8_t> state;  // their sequence state
  };
  // The longest stored prefix of `prompt` with more than `more_than` and at most
  // `at_most` tokens, read and checked.
  std::optional<Hit> Find(std::span<const int32_t> prompt, size_t more_than, size_t at_most);
  // Whether an entry holds exactly `tokens`.
  bool Contains(std::span<const int32_t> tokens) const;
  // Stores the state of `tokens` (in the background). An entry for the same tokens is
  // kept as it is; one larger than the budget is not stored, nor one that finds two
  // writes already queued (each holds a copy of a state in RAM).
  void Put(std::vector<int32_t> tokens, std::vector<uint8_t> state);
  // Waits until every queued write is on disk.
  void Flush();
  PromptStoreStats stats() const;

 private:
  struct Entry {
    std::string path;
    uint64_t n_tokens = 0, bytes = 0;
    int64_t last_used = 0;  // ns, the file's mtime
  };
  struct Write {
    std::vector<int32_t> tokens;
    std::vector<uint8_t> state;
    uint64_t hash = 0;
  };

  explicit PromptStore(PromptStoreOptions options);
  void Scan();
  void Writer();
  Status WriteEntry(const Write& w, Entry* entry);
  // Deletes least recently used entries until the budget holds. REQUIRES: mu_ held.
  void EvictLocked();
  void DropLocked(uint64_t hash);
  std::string PathFor(uint64_t hash) const;

  const PromptStoreOptions options_;
  mutable std::mutex mu_;
  std::condition_variable queued_, drained_;
  std::map<uint64_t, Entry> entries_;       // by token hash
  std::multiset<uint64_t> lengths_;         // the entries' token counts
  std::deque<Write> queue_;
  std::set<uint64_t> pending_;              // token hashes queued or being written
  bool writing_ = false, stopping_ = false;
  PromptStoreStats stats_;
  std::thread writer_;
};

// XXH3 of the tokens as stored (the key of an entry).
uint64_t HashTokens(std::span<const int32_t> tokens);

}  // namespace strata::server

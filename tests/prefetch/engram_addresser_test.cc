// Engram's exact prefetch on its own: the rows a chunk's tokens address are requested
// from a real row cache before any layer runs, taken with the right bytes, handed back
// when a chunk ends early, and the hash history rolls back.
#include "prefetch/engram_addresser.h"

#include <fcntl.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "tiers/ram_budget.h"

namespace strata::prefetch {
namespace {

constexpr uint32_t kRowBytes = 264;
constexpr uint64_t kRows = 64;

// Two Engram layers (model layers 0 and 2), bigrams with two hash heads: two rows per
// token per layer, from tables of 29 + 31 = 60 rows.
EngramAddressing Addressing() {
  EngramAddressing a;
  a.layer_ids = {0, 2};
  a.max_ngram = 2;
  a.n_heads = 2;
  a.compressed_vocab = 10;
  a.pad_id = 0;
  for (uint32_t t = 0; t < 10; ++t) a.token_map.push_back(t);
  a.primes = {29, 31, 29, 31};
  a.multipliers = {3, 5, 7, 11};
  a.rows = {60, 60};
  return a;
}

// Both tables in one file, row r of table l filled with the byte l * 64 + r.
class RowFile {
 public:
  RowFile() : path_("/var/tmp/strata-prefetch-" + std::to_string(::getpid()) + "-rows.bin") {
    std::vector<uint8_t> data(2 * kRows * kRowBytes);
    for (size_t i = 0; i < 2 * kRows; ++i) {
      std::fill_n(&data[i * kRowBytes], kRowBytes, static_cast<uint8_t>(i));
    }
    const int fd = ::open(path_.c_str(), O_CREAT | O_TRUNC | O_WRONLY, 0644);
    EXPECT_GE(fd, 0);
    EXPECT_EQ(::write(fd, data.data(), data.size()), static_cast<ssize_t>(data.size()));
    ::close(fd);
  }
  ~RowFile() { ::unlink(path_.c_str()); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

std::unique_ptr<tiers::EngramRowCache> OpenCache(const RowFile& file, tiers::RamBudget& budget,
                                                 uint64_t capacity_rows = 32) {
  tiers::EngramCacheOptions o;
  o.capacity_bytes = capacity_rows * kRowBytes;
  o.reader.backend = storage::IoBackend::kPread;
  auto cache = tiers::EngramRowCache::Create(
      file.path(), {{"l0", 0, kRows, kRowBytes}, {"l1", kRows * kRowBytes, kRows, kRowBytes}},
      budget, o);
  EXPECT_TRUE(cache.ok()) << cache.status().ToString();
  return cache.ok() ? std::move(cache).value() : nullptr;
}

// What the hash says the rows of `tokens` are, from a fresh hasher: [t][layer][col].
std::vector<uint64_t> Expected(const EngramAddressing& a, const std::vector<int32_t>& tokens) {
  EngramHasher h(a);
  std::vector<uint64_t> ids(tokens.size() * 4);
  for (size_t t = 0; t < tokens.size(); ++t) h.Next(tokens[t], true, {&ids[t * 4], 4});
  return ids;
}

TEST(EngramAddresser, RequestsEveryLayersRowsUpFrontAndTakesTheirBytes) {
  const EngramAddressing a = Addressing();
  RowFile file;
  tiers::RamBudget budget(0);
  auto cache = OpenCache(file, budget);
  ASSERT_TRUE(cache);
  EngramAddresser addresser(a, cache.get(), {false, false});
  const std::vector<int32_t> tokens = {4, 7, 7, 1};
  ASSERT_TRUE(addresser.Address(tokens).ok());
  // Before any layer runs, both layers' rows were asked for.
  EXPECT_EQ(cache->stats().lookups, tokens.size() * 2 * 2);
  const std::vector<uint64_t> want = Expected(a, tokens);
  uint8_t row[kRowBytes];
  for (uint32_t l = 0; l < 2; ++l) {
    addresser.BeginLayer(l);
    for (int64_t t = 0; t < 4; ++t) {
      for (uint32_t col = 0; col < 2; ++col) {
        const uint64_t id = addresser.row(l, t, col);
        EXPECT_EQ(id, want[t * 4 + l * 2 + col]);
        EXPECT_LT(id, a.rows[l]);
        ASSERT_TRUE(addresser.Take(l, id, row).ok());
        EXPECT_EQ(row[0], static_cast<uint8_t>(l * kRows + id));
        EXPECT_EQ(row[kRowBytes - 1], static_cast<uint8_t>(l * kRows + id));
      }
    }
  }
  addresser.EndChunk();
  EXPECT_TRUE(cache->Clear().ok()) << "a row is still pinned";
}

TEST(EngramAddresser, AChunkThatEndsEarlyHandsBackTheRowsItNeverTook) {
  const EngramAddressing a = Addressing();
  RowFile file;
  tiers::RamBudget budget(0);
  auto cache = OpenCache(file, budget);
  ASSERT_TRUE(cache);
  EngramAddresser addresser(a, cache.get(), {false, false});
  const std::vector<int32_t> tokens = {2, 3, 5};
  ASSERT_TRUE(addresser.Address(tokens).ok());
  EXPECT_FALSE(cache->Clear().ok()) << "requested rows are pinned until taken";
  // Layer 0 ran, the chunk failed before layer 1.
  uint8_t row[kRowBytes];
  addresser.BeginLayer(0);
  for (int64_t t = 0; t < 3; ++t) {
    for (uint32_t col = 0; col < 2; ++col) ASSERT_TRUE(addresser.Take(0, addresser.row(0, t, col), row).ok());
  }
  EXPECT_FALSE(cache->Clear().ok());
  addresser.EndChunk();
  EXPECT_TRUE(cache->Clear().ok());
  // A chunk that failed before any layer: everything goes back.
  ASSERT_TRUE(addresser.Address(tokens).ok());
  addresser.EndChunk();
  EXPECT_TRUE(cache->Clear().ok());
}

TEST(EngramAddresser, TablesInRamAreNeverRequested) {
  const EngramAddressing a = Addressing();
  RowFile file;
  tiers::RamBudget budget(0);
  auto cache = OpenCache(file, budget);
  ASSERT_TRUE(cache);
  EngramAddresser addresser(a, cache.get(), {true, false});
  const std::vector<int32_t> tokens = {1, 2};
  ASSERT_TRUE(addresser.Address(tokens).ok());
  EXPECT_EQ(cache->stats().lookups, tokens.size() * 2) << "only layer 1's rows";
  addresser.EndChunk();
  EXPECT_TRUE(cache->Clear().ok());
  // No row cache at all (every table in RAM): addressing still hashes.
  EngramAddresser in_ram(a, nullptr, {true, true});
  ASSERT_TRUE(in_ram.Address(tokens).ok());
  EXPECT_EQ(in_ram.row(1, 1, 0), Expected(a, tokens)[1 * 4 + 2]);
  in_ram.EndChunk();
}

TEST(EngramAddresser, RestoringTheHistoryAddressesTheSameRowsAgain) {
  const EngramAddressing a = Addressing();
  EngramAddresser addresser(a, nullptr, {true, true});
  const std::vector<int32_t> first = {3, 4}, second = {5, 6};
  ASSERT_TRUE(addresser.Address(first).ok());
  const EngramHasher saved = addresser.Save();
  ASSERT_TRUE(addresser.Address(second).ok());
  const uint64_t after_first = addresser.row(0, 0, 1);
  ASSERT_TRUE(addresser.Address(second).ok());
  EXPECT_NE(addresser.row(0, 0, 1), after_first) << "the bigram (6, 5) differs from (4, 5)";
  addresser.Restore(saved);
  ASSERT_TRUE(addresser.Address(second).ok());
  EXPECT_EQ(addresser.row(0, 0, 1), after_first);
  // Reset: the sequence starts over, the first token's bigram reads pad.
  addresser.Reset();
  ASSERT_TRUE(addresser.Address(first).ok());
  EngramAddresser fresh(a, nullptr, {true, true});
  ASSERT_TRUE(fresh.Address(first).ok());
  EXPECT_EQ(addresser.row(1, 0, 0), fresh.row(1, 0, 0));
}

TEST(EngramAddresser, ARequestTheCacheCannotHoldPinsNothing) {
  const EngramAddressing a = Addressing();
  RowFile file;
  tiers::RamBudget budget(0);
  auto cache = OpenCache(file, budget, 3);
  ASSERT_TRUE(cache);
  EngramAddresser addresser(a, cache.get(), {false, false});
  const std::vector<int32_t> tokens = {1, 2, 3, 4};  // 8 rows per layer, 4 or more distinct
  const Status s = addresser.Address(tokens);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("--engram-cache"), std::string::npos) << s.ToString();
  addresser.EndChunk();
  EXPECT_TRUE(cache->Clear().ok());
}

}  // namespace
}  // namespace strata::prefetch

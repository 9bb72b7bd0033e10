// What Engram's row reads cost the compute around them. A "token" is a fixed amount of
// decode-like work: 100 parallel loops, each a matrix-vector product over 2 MiB of a
// 256 MiB f32 buffer (so, like decode, it streams from RAM in short loops on every
// thread). Every other token also asks the Engram row cache for ROWS random rows of a
// file at its start and takes them a quarter of the way through, as an Engram layer
// behind one ordinary layer would. Tokens with and without reads alternate, so the
// machine's drift cancels: the median ratio of each reading token to the token before
// it is the cost of the reads, measured in one run.
// Run: build/release/bench/engram_io_bench FILE [TOKENS=400] [ROWS=35] [THREADS=2]
//   FILE: any large file on the drive under test (its bytes are read as 264-byte rows),
//   e.g. engram-big.gguf. Reads are direct (O_DIRECT): the page cache plays no part.
// Controls (environment): STRATA_BENCH_REQUESTS=N splits a token's rows into N requests;
// STRATA_BENCH_BUFFERED=1 with STRATA_BENCH_TABLE_MB=M reads rows from the file's first
// M MB through the page cache (no drive involved: the software's share of the cost).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "engine/thread_pool.h"
#include "tiers/engram_row_cache.h"
#include "tiers/ram_budget.h"

namespace {

constexpr int64_t kCols = 1024;
constexpr int64_t kRowsPerLoop = 512;  // 2 MiB of f32 per loop
constexpr int kLoopsPerToken = 100;
constexpr int64_t kBufferRows = 256 * 256;  // 256 MiB
constexpr uint32_t kRowBytes = 264;

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  using namespace strata;
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s FILE [TOKENS] [ROWS] [THREADS]\n", argv[0]);
    return 2;
  }
  const std::string path = argv[1];
  const int tokens = argc > 2 ? std::atoi(argv[2]) : 400;
  const int rows_per_token = argc > 3 ? std::atoi(argv[3]) : 35;
  const unsigned threads = argc > 4 ? static_cast<unsigned>(std::atoi(argv[4])) : 2;

  std::error_code ec;
  uint64_t table_rows = std::filesystem::file_size(path, ec) / kRowBytes;
  if (ec || table_rows == 0 || tokens < 2 || rows_per_token < 0) {
    std::fprintf(
        stderr, "%s: %s\n", path.c_str(),
        ec ? ec.message().c_str() : "needs a file of at least one row, TOKENS >= 2, ROWS >= 0");
    return 1;
  }
  tiers::RamBudget budget(0);
  tiers::EngramCacheOptions o;  // 64 MiB: random rows of a large file almost always miss
  // The controls in the header: buffered reads of a region the page cache holds.
  if (const char* e = std::getenv("STRATA_BENCH_BUFFERED"); e && *e == '1') o.reader.direct = false;
  if (const char* e = std::getenv("STRATA_BENCH_TABLE_MB")) {
    table_rows =
        std::min<uint64_t>(table_rows, std::strtoull(e, nullptr, 10) * (1 << 20) / kRowBytes);
    o.capacity_bytes = 1 << 20;
  }
  auto cache =
      tiers::EngramRowCache::Create(path, {{"bench", 0, table_rows, kRowBytes}}, budget, o);
  if (!cache.ok()) {
    std::fprintf(stderr, "%s\n", cache.status().ToString().c_str());
    return 1;
  }

  size_t requests = 1;
  if (const char* e = std::getenv("STRATA_BENCH_REQUESTS")) requests = std::max(1, std::atoi(e));
  engine::ThreadPool pool(threads);
  std::vector<float> weights(static_cast<size_t>(kBufferRows * kCols));
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> uni(-1, 1);
  for (float& w : weights) w = uni(rng);
  std::vector<float> x(kCols), y(kRowsPerLoop);
  for (float& v : x) v = uni(rng);
  std::uniform_int_distribution<uint64_t> pick(0, table_rows - 1);
  std::vector<uint64_t> ids(static_cast<size_t>(rows_per_token));
  uint8_t row[kRowBytes];

  int64_t next_row = 0;
  auto loop = [&] {
    const float* w = &weights[static_cast<size_t>(next_row * kCols)];
    next_row = (next_row + kRowsPerLoop) % kBufferRows;
    pool.ParallelFor(
        kRowsPerLoop,
        [&](int64_t begin, int64_t end) {
          for (int64_t r = begin; r < end; ++r) {
            float s = 0;
            for (int64_t c = 0; c < kCols; ++c) s += w[r * kCols + c] * x[c];
            y[r] = s;
          }
        },
        16);
  };

  std::vector<double> plain, reading, ratios;
  const int warmup = 20;
  tiers::EngramStats before;
  for (int t = 0; t < warmup + tokens; ++t) {
    const bool io = t % 2 == 1;
    const auto t0 = std::chrono::steady_clock::now();
    if (io) {
      for (uint64_t& id : ids) id = pick(rng);
      // One request (one submission) by default; STRATA_BENCH_REQUESTS=N splits the rows
      // into N, as the engine's N Engram layers do, to price a submission.
      const size_t per = (ids.size() + requests - 1) / requests;
      for (size_t first = 0; first < ids.size(); first += per) {
        const auto part = std::span(ids).subspan(first, std::min(per, ids.size() - first));
        if (Status s = (*cache)->Request(0, part); !s.ok()) {
          std::fprintf(stderr, "%s\n", s.ToString().c_str());
          return 1;
        }
      }
    }
    for (int i = 0; i < kLoopsPerToken; ++i) {
      if (io && i == kLoopsPerToken / 4) {
        for (uint64_t id : ids) {
          if (Status s = (*cache)->Take(0, id, row); !s.ok()) {
            std::fprintf(stderr, "%s\n", s.ToString().c_str());
            return 1;
          }
        }
      }
      loop();
    }
    const double ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    if (t < warmup) {
      before = (*cache)->stats();
      continue;
    }
    (io ? reading : plain).push_back(ms);
    if (io && !plain.empty()) ratios.push_back(ms / plain.back());
  }
  const tiers::EngramStats st = (*cache)->stats().Since(before);  // measured tokens only
  std::printf(
      "%s | %u threads | %d tokens | %d random rows per reading token in %zu request(s) | io %s, "
      "%u-byte blocks\n",
      path.c_str(), threads, tokens, rows_per_token, requests,
      std::string(storage::IoBackendName((*cache)->backend())).c_str(), (*cache)->read_alignment());
  std::printf("token ms, median: without reads %.3f, with reads %.3f\n", Median(plain),
              Median(reading));
  std::printf("cost of the reads: %.2f%% (median of %zu paired ratios)\n",
              (Median(ratios) - 1) * 100, ratios.size());
  std::printf(
      "rows read %llu, hit %.1f%%, stall %.3f ms per reading token\n",
      static_cast<unsigned long long>(st.misses),
      st.lookups ? 100.0 * static_cast<double>(st.hits) / static_cast<double>(st.lookups) : 0,
      static_cast<double>(st.stall_ns) / 1e6 / std::max<size_t>(1, reading.size()));
  return 0;
}

// The async reader backends against plain file bytes: random aligned reads land
// exactly; a read of the aligned cover past end of file is zero-filled; transient EIO,
// short reads and delays (the fault backend) still deliver the right bytes; a
// permanent EIO is one error naming the file and range; demand reads overtake queued
// prefetch reads; cancelled reads never complete.
#include "storage/async_reader.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <thread>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <random>

namespace strata::storage {
namespace {

constexpr uint64_t kAlign = kDirectIoAlignment;

// Collects completions; Wait() blocks until `n` have arrived.
class Completions {
 public:
  AsyncReader::OnDone Callback() {
    return [this](uint64_t tag, const Status& s) {
      std::lock_guard lock(mu_);
      order_.push_back(tag);
      status_.emplace(tag, s);
      cv_.notify_all();
    };
  }
  void Wait(size_t n) {
    std::unique_lock lock(mu_);
    ASSERT_TRUE(cv_.wait_for(lock, std::chrono::seconds(60), [&] { return order_.size() >= n; }))
        << "only " << order_.size() << " of " << n << " reads completed";
  }
  std::vector<uint64_t> order() {
    std::lock_guard lock(mu_);
    return order_;
  }
  Status status(uint64_t tag) {
    std::lock_guard lock(mu_);
    return status_.at(tag);
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<uint64_t> order_;
  std::map<uint64_t, Status> status_;
};

struct AlignedFree {
  void operator()(uint8_t* p) const { std::free(p); }
};
using Buffer = std::unique_ptr<uint8_t, AlignedFree>;
Buffer Aligned(size_t n) { return Buffer(static_cast<uint8_t*>(std::aligned_alloc(kAlign, n))); }

class AsyncReaderTest : public ::testing::TestWithParam<IoBackend> {
 protected:
  void SetUp() override {
    // Under /var/tmp rather than /tmp, which may be tmpfs (no O_DIRECT).
    path_ = "/var/tmp/strata-reader-" + std::to_string(::getpid()) + ".bin";
    std::mt19937_64 rng(7);
    bytes_.resize(8 * 1024 * 1024 + 1234);  // not a multiple of 4 KiB: the tail is short
    for (auto& b : bytes_) b = static_cast<char>(rng());
    std::ofstream(path_, std::ios::binary).write(bytes_.data(), std::streamsize(bytes_.size()));
  }
  void TearDown() override { std::filesystem::remove(path_); }

  std::unique_ptr<AsyncReader> Open(Completions& done, ReaderOptions o) {
    o.backend = GetParam();
    auto r = OpenAsyncReader(path_, o, done.Callback());
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    // No silent fallback: the backend under test is the one that runs.
    EXPECT_EQ((*r)->backend(), GetParam());
    return std::move(r).value();
  }

  std::string path_;
  std::string bytes_;
};

TEST_P(AsyncReaderTest, RandomAlignedReadsMatchTheFile) {
  Completions done;
  ReaderOptions o;
  o.depth = 8;
  o.faults = {.eio_every = 9, .short_every = 4, .delay_every = 5, .delay_us = 200};
  if (GetParam() == IoBackend::kUringFault) {
    o.faults.eagain_every = 7;
    o.faults.submit_fail_every = 3;
  }
  auto reader = Open(done, o);
  std::mt19937_64 rng(11);
  std::vector<ReadOp> ops;
  std::vector<Buffer> bufs;
  for (uint64_t i = 0; i < 200; ++i) {
    const uint64_t blocks = bytes_.size() / kAlign;
    const uint64_t len = (1 + rng() % 64) * kAlign;
    const uint64_t off = (rng() % (blocks - 64)) * kAlign;
    bufs.push_back(Aligned(len));
    ops.push_back({off, static_cast<uint32_t>(len), bufs.back().get(), i,
                   i % 3 ? IoPriority::kPrefetch : IoPriority::kDemand});
  }
  // The last block of the file: the aligned cover runs past the end.
  const uint64_t tail_off = bytes_.size() / kAlign * kAlign;
  bufs.push_back(Aligned(kAlign));
  ops.push_back(
      {tail_off, static_cast<uint32_t>(kAlign), bufs.back().get(), 200, IoPriority::kDemand});
  reader->Submit(ops);
  done.Wait(ops.size());
  for (const ReadOp& op : ops) {
    ASSERT_TRUE(done.status(op.tag).ok()) << done.status(op.tag).ToString();
    const uint64_t real = std::min<uint64_t>(op.length, bytes_.size() - op.offset);
    ASSERT_EQ(0, std::memcmp(op.dst, bytes_.data() + op.offset, real)) << "read " << op.tag;
    for (uint64_t i = real; i < op.length; ++i) ASSERT_EQ(op.dst[i], 0) << "tail not zeroed";
  }
  const ReaderStats s = reader->stats();
  EXPECT_EQ(s.ops, ops.size());
  if (GetParam() == IoBackend::kFault || GetParam() == IoBackend::kUringFault) {
    EXPECT_GT(s.retries, 0u) << "the fault plan's EIOs should have been retried";
    EXPECT_GT(s.resubmits, 0u) << "the fault plan's short reads should have been continued";
  }
  if (GetParam() == IoBackend::kUringFault) {
    EXPECT_GT(s.submit_failures, 0u) << "failed submits should have been sent again";
  }
}

TEST_P(AsyncReaderTest, RegisteredBuffersReadTheSameBytes) {
  Completions done;
  auto reader = Open(done, {});
  const uint64_t n = 64 * kAlign;
  Buffer arena = Aligned(4 * n);
  reader->RegisterBuffer(arena.get(), 4 * n);
  std::vector<ReadOp> ops;
  for (uint64_t i = 0; i < 4; ++i) {
    ops.push_back(
        {i * 3 * n, static_cast<uint32_t>(n), arena.get() + i * n, i, IoPriority::kDemand});
  }
  reader->Submit(ops);
  done.Wait(4);
  for (const ReadOp& op : ops) {
    ASSERT_TRUE(done.status(op.tag).ok());
    EXPECT_EQ(0, std::memcmp(op.dst, bytes_.data() + op.offset, op.length));
  }
}

INSTANTIATE_TEST_SUITE_P(Backends, AsyncReaderTest,
                         ::testing::Values(IoBackend::kUring, IoBackend::kPread, IoBackend::kFault,
                                           IoBackend::kUringFault),
                         [](const auto& p) {
                           std::string name(IoBackendName(p.param));
                           std::replace(name.begin(), name.end(), '-', '_');
                           return name;
                         });

class FaultReaderTest : public AsyncReaderTest {};

TEST_P(FaultReaderTest, PermanentEioNamesTheFileAndRange) {
  Completions done;
  ReaderOptions o;
  o.faults.eio_always_at = 3 * kAlign + 5;
  auto reader = Open(done, o);
  Buffer a = Aligned(2 * kAlign), b = Aligned(2 * kAlign);
  const ReadOp ops[] = {{2 * kAlign, uint32_t(2 * kAlign), a.get(), 1, IoPriority::kDemand},
                        {8 * kAlign, uint32_t(2 * kAlign), b.get(), 2, IoPriority::kDemand}};
  reader->Submit(ops);
  done.Wait(2);
  const Status bad = done.status(1);
  EXPECT_EQ(bad.code(), StatusCode::kIOError);
  EXPECT_NE(bad.message().find(path_), std::string::npos) << bad.message();
  EXPECT_NE(bad.message().find("[8192, 16384)"), std::string::npos) << bad.message();
  EXPECT_TRUE(done.status(2).ok());
  EXPECT_EQ(reader->stats().retries, 2u) << "three attempts in all";
}

TEST_P(FaultReaderTest, DemandOvertakesQueuedPrefetchAndCancelledReadsNeverComplete) {
  Completions done;
  ReaderOptions o;
  o.depth = 1;  // one read at a time: the queue decides the order
  o.faults = {.delay_every = 1, .delay_us = 3000};
  auto reader = Open(done, o);
  std::vector<Buffer> bufs;
  std::vector<ReadOp> prefetch;
  for (uint64_t i = 0; i < 6; ++i) {
    bufs.push_back(Aligned(kAlign));
    prefetch.push_back({i * kAlign, uint32_t(kAlign), bufs.back().get(), i, IoPriority::kPrefetch});
  }
  reader->Submit(prefetch);
  EXPECT_EQ(reader->Cancel(4) + reader->Cancel(5), 2u);
  reader->Promote(3);
  bufs.push_back(Aligned(kAlign));
  const ReadOp demand{40 * kAlign, uint32_t(kAlign), bufs.back().get(), 99, IoPriority::kDemand};
  reader->Submit({&demand, 1});
  done.Wait(5);
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  const std::vector<uint64_t> order = done.order();
  ASSERT_EQ(order.size(), 5u) << "cancelled reads must not complete";
  // Read 0 may already have started; the promoted read 3 and the demand come next.
  const auto pos = [&](uint64_t tag) {
    return std::find(order.begin(), order.end(), tag) - order.begin();
  };
  EXPECT_LE(pos(3), 2);
  EXPECT_LE(pos(99), 2);
  EXPECT_GT(pos(2), pos(99));
  EXPECT_EQ(reader->stats().cancelled, 2u);
}

INSTANTIATE_TEST_SUITE_P(Fault, FaultReaderTest,
                         ::testing::Values(IoBackend::kFault, IoBackend::kUringFault),
                         [](const auto& p) {
                           std::string name(IoBackendName(p.param));
                           std::replace(name.begin(), name.end(), '-', '_');
                           return name;
                         });

// The io_uring backend's own failure paths, injected into its completions and submits.
class UringFaultTest : public AsyncReaderTest {};

std::vector<ReadOp> BlockReads(std::vector<Buffer>& bufs, int n) {
  std::vector<ReadOp> ops;
  for (int i = 0; i < n; ++i) {
    bufs.push_back(Aligned(4 * kAlign));
    ops.push_back({static_cast<uint64_t>(i) * 8 * kAlign, uint32_t(4 * kAlign), bufs.back().get(),
                   static_cast<uint64_t>(i), IoPriority::kDemand});
  }
  return ops;
}

TEST_P(UringFaultTest, AnEagainStormIsOneErrorPerReadNotAHang) {
  Completions done;
  ReaderOptions o;
  o.faults = {.eagain_every = 1};
  auto reader = Open(done, o);
  std::vector<Buffer> bufs;
  const std::vector<ReadOp> ops = BlockReads(bufs, 4);
  const auto start = std::chrono::steady_clock::now();
  reader->Submit(ops);
  done.Wait(ops.size());
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(10));
  for (const ReadOp& op : ops) {
    const Status s = done.status(op.tag);
    EXPECT_EQ(s.code(), StatusCode::kIOError);
    EXPECT_NE(s.message().find("times in a row"), std::string::npos) << s.message();
    EXPECT_NE(s.message().find(path_), std::string::npos) << s.message();
  }
  EXPECT_GT(reader->stats().resubmits, 60u) << "EAGAIN is retried, up to its cap";
}

TEST_P(UringFaultTest, SubmitsThatFailNowAndThenLoseNoRead) {
  // Every other io_uring_submit fails, the wake-up NOPs' included: the reaper's tick
  // must send what is left in the ring, one Submit call at a time.
  Completions done;
  ReaderOptions o;
  o.depth = 2;
  o.faults = {.submit_fail_every = 2};
  auto reader = Open(done, o);
  std::vector<Buffer> bufs;
  const std::vector<ReadOp> ops = BlockReads(bufs, 24);
  for (size_t i = 0; i < ops.size(); ++i) {
    reader->Submit({&ops[i], 1});
    done.Wait(i + 1);
  }
  for (const ReadOp& op : ops) {
    ASSERT_TRUE(done.status(op.tag).ok()) << done.status(op.tag).ToString();
    ASSERT_EQ(0, std::memcmp(op.dst, bytes_.data() + op.offset, op.length));
  }
  EXPECT_GT(reader->stats().submit_failures, 0u);
}

TEST_P(UringFaultTest, ASubmitThatAlwaysFailsEndsEveryReadWithAnError) {
  Completions done;
  ReaderOptions o;
  o.faults = {.submit_fail_every = 1};
  auto reader = Open(done, o);
  std::vector<Buffer> bufs;
  const std::vector<ReadOp> ops = BlockReads(bufs, 5);
  reader->Submit(ops);
  done.Wait(ops.size());
  for (const ReadOp& op : ops) {
    const Status s = done.status(op.tag);
    EXPECT_EQ(s.code(), StatusCode::kIOError);
    EXPECT_NE(s.message().find("io_uring_submit failed"), std::string::npos) << s.message();
  }
  // A broken ring fails later reads at once rather than queueing them forever.
  std::vector<Buffer> more;
  std::vector<ReadOp> later = BlockReads(more, 1);
  later[0].tag = 100;
  reader->Submit(later);
  done.Wait(ops.size() + 1);
  EXPECT_FALSE(done.status(100).ok());
}

TEST_P(UringFaultTest, ShortReadsContinueFromAnAlignedOffset) {
  // Every completion is cut to half (a block multiple); the rest is read from the
  // aligned offset reached, and the bytes are the file's.
  Completions done;
  ReaderOptions o;
  o.faults = {.short_every = 1};
  auto reader = Open(done, o);
  std::vector<Buffer> bufs;
  const std::vector<ReadOp> ops = BlockReads(bufs, 8);
  reader->Submit(ops);
  done.Wait(ops.size());
  for (const ReadOp& op : ops) {
    ASSERT_TRUE(done.status(op.tag).ok()) << done.status(op.tag).ToString();
    ASSERT_EQ(0, std::memcmp(op.dst, bytes_.data() + op.offset, op.length));
  }
  EXPECT_GE(reader->stats().resubmits, 8u);
}

INSTANTIATE_TEST_SUITE_P(Uring, UringFaultTest, ::testing::Values(IoBackend::kUringFault),
                         [](const auto&) { return std::string("uring_fault"); });

// A kernel whose io_uring cannot read: the pread pool takes over, and says so.
TEST(UringProbe, NoReadOpcodeFallsBackToThePreadPool) {
  const std::string path = "/var/tmp/strata-probe-" + std::to_string(::getpid()) + ".bin";
  std::ofstream(path, std::ios::binary) << std::string(3 * kAlign, 'x');
  Completions done;
  ReaderOptions o;
  o.backend = IoBackend::kUringFault;
  o.faults.no_read_opcode = true;
  auto r = OpenAsyncReader(path, o, done.Callback());
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ((*r)->backend(), IoBackend::kPread);
  Buffer b = Aligned(kAlign);
  const ReadOp op{kAlign, uint32_t(kAlign), b.get(), 1, IoPriority::kDemand};
  (*r)->Submit({&op, 1});
  done.Wait(1);
  EXPECT_TRUE(done.status(1).ok());
  EXPECT_EQ(b.get()[0], 'x');
  r->reset();
  std::filesystem::remove(path);
}

}  // namespace
}  // namespace strata::storage

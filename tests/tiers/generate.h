// Shared by the tier tests: run a model through TieredModel with a given budget share,
// --io backend, prefetch mode and thread count, and record the logits of a 100-token
// prefill (chunks of 32) plus 64 greedy tokens, so runs can be compared bit for bit.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "engine/session.h"
#include "engine/tiered_model.h"
#include "tests/tiers/test_model.h"

namespace strata::engine::testing_generate {

using prefetch::PrefetchMode;

struct Variant {
  Variant(double share = 0, std::string io_backend = "uring",
          PrefetchMode prefetch_mode = PrefetchMode::kAll, unsigned n_threads = 2)
      : resident_share(share),
        io(std::move(io_backend)),
        prefetch(prefetch_mode),
        threads(n_threads) {}

  double resident_share;  // 0: no budget (all in RAM)
  std::string io;
  PrefetchMode prefetch;
  unsigned threads;
  std::optional<storage::FaultPlan> faults;  // io "fault": this plan instead of the mix

  std::string Name() const {
    return "share " + std::to_string(resident_share) + " io " + io + " prefetch " +
           std::string(prefetch::PrefetchModeName(prefetch)) + " -t " + std::to_string(threads);
  }
};

using Trace = std::vector<std::vector<float>>;

inline TierOptions OptionsFor(const std::string& path, const Variant& v) {
  TierOptions o;
  o.use_profile = false;
  if (v.io == "mmap") {
    o.mmap = true;
  } else if (v.io == "pread") {
    o.reader.backend = storage::IoBackend::kPread;
  } else if (v.io == "fault" || v.io == "uring-fault") {
    o.reader.backend =
        v.io == "fault" ? storage::IoBackend::kFault : storage::IoBackend::kUringFault;
    o.reader.faults = v.faults ? *v.faults
                               : storage::FaultPlan{.eio_every = 17,
                                                    .short_every = 5,
                                                    .flip_every = 41,
                                                    .delay_every = 9,
                                                    .delay_us = 300};
    if (!v.faults && v.io == "uring-fault") {
      o.reader.faults.eagain_every = 13;
      o.reader.faults.submit_fail_every = 7;
    }
  }
  if (v.resident_share > 0) {
    auto header = storage::ReadGgufFile(path);
    EXPECT_TRUE(header.ok());
    auto probe = tiers::PlanResidency(*header, testing::Inputs(0, 0, 4, {}));
    EXPECT_TRUE(probe.ok());
    const auto slots = static_cast<uint64_t>(v.resident_share * double(probe->total_bundles));
    o.ram_budget = probe->pinned_dense_bytes + slots * probe->slot_bytes;
  }
  return o;
}

inline Trace Generate(const std::string& path, const Variant& v,
                      tiers::CacheStats* stats = nullptr) {
  auto tm = TieredModel::Open(path, OptionsFor(path, v));
  EXPECT_TRUE(tm.ok()) << tm.status().ToString();
  if (!tm.ok()) return {};
  DeepseekModel& model = (*tm)->model();
  if (v.resident_share > 0 && v.io != "mmap") {
    EXPECT_EQ((*tm)->cache().mode(), "tiered");
    EXPECT_LE((*tm)->budget().used(), (*tm)->effective_budget());
    // No silent fallback: the backend the variant names is the one that read.
    EXPECT_EQ(std::string(storage::IoBackendName((*tm)->cache().backend())), v.io);
  }
  Session session(model, 256, storage::GgmlType::kF16,
                           {.threads = v.threads, .prefetch = v.prefetch, .lookahead = 2});
  std::mt19937 rng(5);
  std::vector<int32_t> prompt(100);
  for (int32_t& t : prompt) t = static_cast<int32_t>(rng() % model.config().n_vocab);
  Trace trace;
  std::vector<float> logits;
  Status s = session.Eval(prompt, &logits, 32);
  EXPECT_TRUE(s.ok()) << s.ToString();
  trace.push_back(logits);
  for (int step = 0; step < 64 && s.ok(); ++step) {
    const int32_t next =
        static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
    s = session.Eval({&next, 1}, &logits);
    EXPECT_TRUE(s.ok()) << s.ToString();
    trace.push_back(logits);
  }
  if (stats) *stats = (*tm)->cache().stats();
  return trace;
}

inline void ExpectIdentical(const Trace& want, const Trace& got, const std::string& what) {
  ASSERT_EQ(want.size(), got.size()) << what;
  for (size_t i = 0; i < want.size(); ++i) {
    ASSERT_EQ(want[i].size(), got[i].size());
    ASSERT_EQ(0, std::memcmp(want[i].data(), got[i].data(), want[i].size() * sizeof(float)))
        << what << ": logits differ at step " << i;
  }
}

}  // namespace strata::engine::testing_generate

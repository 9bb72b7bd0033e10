// Several sequences on one session (engine/session.h): a Step that decodes one token of
// each gives, for every sequence, bit-identically the logits that sequence gets alone
// (its own session, prefill then one token at a time), on deepseek2, deepseek4 and the
// Engram host, all in RAM and at a budget that forces expert reads, with 1 and 2
// threads; sequences of different lengths and steps over a subset of them included.
// A step that fails (bad input, a context that is full) moves no sequence. A sequence
// saved as bytes and loaded into another session (another sequence of it) continues
// bit for bit; bytes that do not fit are refused and leave the sequence reset.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "engine/session.h"
#include "engine/tiered_model.h"
#include "tests/tiers/generate.h"
#include "tests/tiers/test_model.h"

namespace strata::engine {
namespace {

using namespace testing_generate;

int32_t Argmax(const std::vector<float>& v) {
  return static_cast<int32_t>(std::max_element(v.begin(), v.end()) - v.begin());
}

std::vector<int32_t> Prompt(int length, int salt) {
  std::vector<int32_t> p;
  for (int i = 0; i < length; ++i) p.push_back((i * 37 + 11 * salt + 5) % 256);
  return p;
}

constexpr int kSequences = 3, kSteps = 12;
// Sequence 1 stops early, so the last steps run a subset of the sequences.
constexpr int kStepsOf[kSequences] = {kSteps, kSteps / 2, kSteps};
constexpr int kPromptOf[kSequences] = {40, 9, 70};

// Each sequence's logits alone: the prompt's, then after each greedy token.
std::vector<Trace> Alone(TieredModel& tm, unsigned threads) {
  std::vector<Trace> out(kSequences);
  for (int s = 0; s < kSequences; ++s) {
    Session session(tm.model(), 256, storage::GgmlType::kF32, {.threads = threads});
    std::vector<float> logits;
    EXPECT_TRUE(session.Eval(Prompt(kPromptOf[s], s), &logits, 16).ok());
    out[s].push_back(logits);
    for (int i = 0; i < kStepsOf[s]; ++i) {
      const int32_t t = Argmax(logits);
      EXPECT_TRUE(session.Eval({&t, 1}, &logits).ok());
      out[s].push_back(logits);
    }
  }
  return out;
}

std::vector<Trace> Together(TieredModel& tm, unsigned threads) {
  std::vector<Trace> out(kSequences);
  Session session(tm.model(), 256, storage::GgmlType::kF32, {.threads = threads}, kSequences);
  for (uint32_t s = 0; s < kSequences; ++s) {
    std::vector<float> logits;
    EXPECT_TRUE(session.Eval(s, Prompt(kPromptOf[s], static_cast<int>(s)), &logits, 16).ok());
    out[s].push_back(logits);
  }
  for (int i = 0; i < kSteps; ++i) {
    std::vector<uint32_t> seqs;
    std::vector<int32_t> tokens;
    // Listed in a varying order: rows need not follow sequence numbers.
    for (int j = 0; j < kSequences; ++j) {
      const auto s = static_cast<uint32_t>((i + j) % kSequences);
      if (i < kStepsOf[s]) {
        seqs.push_back(s);
        tokens.push_back(Argmax(out[s].back()));
      }
    }
    std::vector<std::vector<float>> logits;
    EXPECT_TRUE(session.Step(seqs, tokens, &logits).ok());
    for (size_t r = 0; r < seqs.size(); ++r) out[seqs[r]].push_back(logits[r]);
  }
  for (uint32_t s = 0; s < kSequences; ++s) {
    EXPECT_EQ(session.n_past(s), kPromptOf[s] + kStepsOf[s]);
  }
  return out;
}

class BatchedDecode : public ::testing::TestWithParam<std::string> {};

TEST_P(BatchedDecode, EachSequenceGetsTheLogitsItGetsAloneAtEveryBudgetAndThreadCount) {
  const std::string path = testing::TierTestModel(GetParam());
  for (const double share : {0.0, 0.25}) {
    for (const unsigned threads : {1u, 2u}) {
      SCOPED_TRACE("share " + std::to_string(share) + " -t " + std::to_string(threads));
      auto tm = TieredModel::Open(path, OptionsFor(path, Variant(share)));
      ASSERT_TRUE(tm.ok()) << tm.status().ToString();
      const std::vector<Trace> alone = Alone(**tm, threads);
      const uint64_t misses_before = (*tm)->cache().stats().misses;
      const std::vector<Trace> together = Together(**tm, threads);
      for (int s = 0; s < kSequences; ++s) {
        ASSERT_EQ(together[s].size(), alone[s].size()) << "sequence " << s;
        for (size_t i = 0; i < alone[s].size(); ++i) {
          ASSERT_EQ(together[s][i], alone[s][i]) << "sequence " << s << " step " << i;
        }
      }
      if (share > 0) {
        EXPECT_GT((*tm)->cache().stats().misses, misses_before);
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Presets, BatchedDecode,
                         ::testing::Values("tiny", "v4-tiny", "engram-tiny"),
                         [](const auto& p) {
                           std::string name = p.param;
                           std::replace(name.begin(), name.end(), '-', '_');
                           return name;
                         });

class SavedSequence : public ::testing::TestWithParam<std::string> {};

TEST_P(SavedSequence, ContinuesBitForBitInAnotherSession) {
  const std::string path = testing::TierTestModel(GetParam());
  auto tm = TieredModel::Open(path, OptionsFor(path, Variant(0)));
  ASSERT_TRUE(tm.ok()) << tm.status().ToString();
  const DeepseekModel& model = (*tm)->model();
  Session a(model, 256, storage::GgmlType::kF16, {.threads = 2});
  std::vector<float> logits;
  // 150 tokens: V4's compressors hold entries and a pending window.
  ASSERT_TRUE(a.Eval(Prompt(150, 3), &logits, 32).ok());
  const std::vector<uint8_t> saved = a.SaveSequence(0);
  Trace want;
  std::vector<int32_t> continuation;
  for (int i = 0; i < 6; ++i) {
    continuation.push_back(Argmax(logits));
    ASSERT_TRUE(a.Eval({&continuation.back(), 1}, &logits).ok());
    want.push_back(logits);
  }
  Session b(model, 256, storage::GgmlType::kF16, {.threads = 1}, 2);
  ASSERT_TRUE(b.Eval(0, Prompt(20, 9), &logits).ok());  // another sequence beside it
  ASSERT_TRUE(b.LoadSequence(1, saved).ok());
  EXPECT_EQ(b.n_past(1), 150);
  for (size_t i = 0; i < continuation.size(); ++i) {
    ASSERT_TRUE(b.Eval(1, {&continuation[i], 1}, &logits).ok());
    ASSERT_EQ(logits, want[i]) << "token " << i;
  }
  EXPECT_EQ(b.n_past(0), 20) << "loading sequence 1 left sequence 0 alone";

  // Bytes that do not fit: truncated, a context too short, another KV type.
  const std::vector<uint8_t> cut(saved.begin(), saved.end() - 5);
  Status s = b.LoadSequence(1, cut);
  EXPECT_EQ(s.code(), StatusCode::kCorruption) << s.ToString();
  EXPECT_EQ(b.n_past(1), 0) << "a refused load resets the sequence";
  Session short_ctx(model, 100, storage::GgmlType::kF16, {});
  EXPECT_EQ(short_ctx.LoadSequence(0, saved).code(), StatusCode::kCorruption);
  if (GetParam() != "v4-tiny") {  // V4 keeps no KV cache of this type
    Session f32(model, 256, storage::GgmlType::kF32, {});
    EXPECT_EQ(f32.LoadSequence(0, saved).code(), StatusCode::kCorruption);
  }
}

INSTANTIATE_TEST_SUITE_P(Presets, SavedSequence,
                         ::testing::Values("tiny", "v4-tiny", "engram-tiny"),
                         [](const auto& p) {
                           std::string name = p.param;
                           std::replace(name.begin(), name.end(), '-', '_');
                           return name;
                         });

TEST(BatchedDecodeErrors, AFailedStepMovesNoSequence) {
  const std::string path = testing::TierTestModel("tiny");
  auto tm = TieredModel::Open(path, OptionsFor(path, Variant(0)));
  ASSERT_TRUE(tm.ok());
  Session session((*tm)->model(), 12, storage::GgmlType::kF32, {.threads = 2}, 2);
  std::vector<float> logits;
  ASSERT_TRUE(session.Eval(0, Prompt(5, 0), &logits).ok());
  ASSERT_TRUE(session.Eval(1, Prompt(12, 1), &logits).ok());  // sequence 1 is full
  std::vector<std::vector<float>> out;
  const uint32_t both[] = {0, 1}, twice[] = {0, 0}, outside[] = {2};
  const int32_t two[] = {3, 4}, bad[] = {3, 999};  // 999: outside the vocabulary
  Status full = session.Step(both, two, &out);
  EXPECT_EQ(full.code(), StatusCode::kResourceExhausted) << full.ToString();
  EXPECT_EQ(session.Step(twice, two, &out).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(session.Step(outside, {two, 1}, &out).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(session.Step(both, {two, 1}, &out).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(session.Step({both, 1}, {bad + 1, 1}, &out).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(session.n_past(0), 5);
  EXPECT_EQ(session.n_past(1), 12);
  // Sequence 0 alone still steps, and continues as a lone session would.
  ASSERT_TRUE(session.Step({both, 1}, {two, 1}, &out).ok());
  Session alone((*tm)->model(), 12, storage::GgmlType::kF32, {.threads = 2});
  ASSERT_TRUE(alone.Eval(Prompt(5, 0), &logits).ok());
  ASSERT_TRUE(alone.Eval({two, 1}, &logits).ok());
  EXPECT_EQ(out[0], logits);
}

}  // namespace
}  // namespace strata::engine

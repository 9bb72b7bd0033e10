// Test helper: every weight type strata computes with, for parameterised suites, and
// the test-name generator that spells them as ggml does ("q4_K").
#pragma once

#include <gtest/gtest.h>

#include <string>

#include "storage/ggml_types.h"

namespace strata::testing {

inline constexpr storage::GgmlType kComputeTypes[] = {
    storage::GgmlType::kF32,  storage::GgmlType::kF16,  storage::GgmlType::kBF16,
    storage::GgmlType::kQ8_0, storage::GgmlType::kQ4_0, storage::GgmlType::kQ5_0,
    storage::GgmlType::kQ4_K, storage::GgmlType::kQ4_1, storage::GgmlType::kQ5_1,
    storage::GgmlType::kQ5_K, storage::GgmlType::kQ6_K, storage::GgmlType::kQ2_K,
    storage::GgmlType::kQ3_K, storage::GgmlType::kMXFP4,
    storage::GgmlType::kIQ2_XXS, storage::GgmlType::kIQ2_XS, storage::GgmlType::kIQ2_S,
    storage::GgmlType::kIQ3_XXS, storage::GgmlType::kIQ3_S, storage::GgmlType::kIQ1_S,
    storage::GgmlType::kIQ1_M, storage::GgmlType::kIQ4_NL, storage::GgmlType::kIQ4_XS,
};

inline std::string TypeTestName(const ::testing::TestParamInfo<storage::GgmlType>& info) {
  return std::string(storage::TypeName(info.param));
}

}  // namespace strata::testing

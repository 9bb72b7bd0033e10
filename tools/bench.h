// `strata bench`: what a model runs at here and what this machine could do at best.
// Measures prefill (pp) and decode (tg) tok/s as the median of repetitions, probes RAM
// read bandwidth and each weight type's kernel throughput on cache-resident data, and
// prints the decode bound they imply (the slower of streaming the active bytes from
// RAM and computing on them) next to the result. Table or JSON.
#pragma once

#include <cstdint>
#include <string>

#include "util/status.h"

namespace strata::tools {

struct BenchOptions {
  std::string model;
  int32_t n_prompt = 512;
  int32_t n_gen = 128;
  int32_t repetitions = 3;
  int64_t batch_size = 512;
  unsigned threads = 0;
  bool json = false;
};

Status RunBench(const BenchOptions& options);

}  // namespace strata::tools

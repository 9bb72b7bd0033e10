// A small backtracking regex engine over code points, covering exactly what the
// pre-tokenizer patterns of llama.cpp and Hugging Face tokenizers use: literals,
// classes with ranges and negation, \s \S \p{L} \p{M} \p{N} \p{P} \p{S}, the
// quantifiers ? * + {m} {m,n} (greedy), alternation, (?:...) groups, negative
// lookahead (?!...) and the end anchor $. Semantics are the usual ones (leftmost match,
// alternatives tried in order, greedy with backtracking), so a pattern behaves as it
// does in llama.cpp. Compile once; Find is thread-safe on a const Regex.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "util/status.h"

namespace strata::engine {

class Regex {
 public:
  static Result<Regex> Compile(std::string_view pattern);
  Regex(Regex&&) noexcept;
  Regex& operator=(Regex&&) noexcept;
  ~Regex();

  // Finds the leftmost match starting in cps[from, end) that ends by `end` (the end of
  // the piece being split, where `$` matches); returns false if there is none. The match
  // is [*match_begin, *match_end), never empty.
  bool Find(const std::vector<uint32_t>& cps, size_t from, size_t end, size_t* match_begin,
            size_t* match_end) const;

  struct Node;

 private:
  Regex();
  std::unique_ptr<Node> root_;
};

// Splits cps[begin, end) by a sequence of regexes as llama.cpp and HF "Isolated" splits
// do: each regex splits every current piece into its matches and the gaps between
// them, in order. Returns piece boundaries as [begin, end) code point ranges.
std::vector<std::pair<size_t, size_t>> SplitByRegexes(const std::vector<Regex>& regexes,
                                                      const std::vector<uint32_t>& cps);

}  // namespace strata::engine

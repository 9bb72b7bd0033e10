// Stop strings over streamed text: text is passed on as soon as no stop string can
// begin in it; a tail that could still become one is held back. When a stop string
// appears, the text before it is released and the rest dropped. Thread-compatible.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace strata::server {

class StopMatcher {
 public:
  explicit StopMatcher(std::vector<std::string> stops) : stops_(std::move(stops)) {}

  // Adds `text`; returns what is safe to pass on. After a match, stopped() is true and
  // matched() names the stop string; later calls return nothing.
  std::string Push(std::string_view text);
  // The held-back tail (the stream ended without a match).
  std::string Flush();
  bool stopped() const { return !matched_.empty(); }
  const std::string& matched() const { return matched_; }

 private:
  std::vector<std::string> stops_;
  std::string held_;
  std::string matched_;
};

}  // namespace strata::server

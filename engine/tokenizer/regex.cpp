#include "engine/tokenizer/regex.h"

#include <functional>

#include "engine/tokenizer/unicode.h"

namespace strata::engine {

// Pattern tree: an alternation of sequences of quantified atoms.
struct Regex::Node {
  enum class Kind { kAlternation, kSequence, kClass, kLookaheadNot, kEnd };
  Kind kind = Kind::kSequence;
  std::vector<std::unique_ptr<Node>> children;  // alternatives, or a sequence's atoms
  int min = 1, max = 1;                         // quantifier on this atom (-1: unbounded)
  // kClass:
  bool negated = false;
  std::vector<std::pair<uint32_t, uint32_t>> ranges;
  uint8_t categories = 0;       // unicode::Flags matched
  bool whitespace = false;      // \s
  bool not_whitespace = false;  // \S inside or outside a class

  bool MatchesCodepoint(uint32_t cp) const {
    bool hit = false;
    for (const auto& [lo, hi] : ranges) hit |= cp >= lo && cp <= hi;
    hit |= categories && (unicode::CategoryFlags(cp) & categories);
    hit |= whitespace && unicode::IsWhitespace(cp);
    hit |= not_whitespace && !unicode::IsWhitespace(cp);
    return hit != negated;
  }
};

namespace {

using Node = Regex::Node;
using Cont = std::function<bool(size_t)>;

class Parser {
 public:
  explicit Parser(std::string_view pattern) {
    for (const auto& span : unicode::DecodeUtf8(pattern)) cps_.push_back(span.cp);
  }

  Result<std::unique_ptr<Node>> Parse() {
    auto node = ParseAlternation();
    if (!node.ok()) return node;
    if (pos_ != cps_.size()) return Error("unexpected ')'");
    return node;
  }

 private:
  Status Error(const std::string& what) const {
    return Status::InvalidArgument("pre-tokenizer regex: " + what + " at position " +
                                   std::to_string(pos_));
  }
  bool AtEnd() const { return pos_ >= cps_.size(); }
  uint32_t Peek() const { return cps_[pos_]; }

  Result<std::unique_ptr<Node>> ParseAlternation() {
    auto alt = std::make_unique<Node>();
    alt->kind = Node::Kind::kAlternation;
    for (;;) {
      auto seq = std::make_unique<Node>();
      seq->kind = Node::Kind::kSequence;
      while (!AtEnd() && Peek() != '|' && Peek() != ')') {
        STRATA_ASSIGN_OR_RETURN(auto atom, ParseAtom());
        STRATA_RETURN_IF_ERROR(ParseQuantifier(atom.get()));
        seq->children.push_back(std::move(atom));
      }
      alt->children.push_back(std::move(seq));
      if (AtEnd() || Peek() != '|') break;
      ++pos_;
    }
    return alt;
  }

  Status ParseQuantifier(Node* atom) {
    if (AtEnd()) return Status::Ok();
    const uint32_t c = Peek();
    if (c == '?') {
      atom->min = 0;
      atom->max = 1;
      ++pos_;
    } else if (c == '*') {
      atom->min = 0;
      atom->max = -1;
      ++pos_;
    } else if (c == '+') {
      atom->min = 1;
      atom->max = -1;
      ++pos_;
    } else if (c == '{') {
      ++pos_;
      int lo = ParseInt(), hi = lo;
      if (!AtEnd() && Peek() == ',') {
        ++pos_;
        hi = (!AtEnd() && Peek() == '}') ? -1 : ParseInt();
      }
      if (AtEnd() || Peek() != '}' || lo < 0) return Error("bad {m,n}");
      ++pos_;
      atom->min = lo;
      atom->max = hi;
    }
    if (!AtEnd() && (Peek() == '?' || Peek() == '+'))
      return Error("lazy/possessive quantifiers unsupported");
    return Status::Ok();
  }

  int ParseInt() {
    int v = -1;
    while (!AtEnd() && Peek() >= '0' && Peek() <= '9')
      v = (v < 0 ? 0 : v * 10) + static_cast<int>(Peek() - '0'), ++pos_;
    return v;
  }

  Result<std::unique_ptr<Node>> ParseAtom() {
    const uint32_t c = Peek();
    if (c == '(') {
      ++pos_;
      bool lookahead_not = false;
      if (pos_ + 1 < cps_.size() && Peek() == '?') {
        if (cps_[pos_ + 1] == ':') {
          pos_ += 2;
        } else if (cps_[pos_ + 1] == '!') {
          pos_ += 2;
          lookahead_not = true;
        } else {
          return Error("unsupported group");
        }
      }
      STRATA_ASSIGN_OR_RETURN(auto inner, ParseAlternation());
      if (AtEnd() || Peek() != ')') return Error("missing ')'");
      ++pos_;
      if (lookahead_not) inner->kind = Node::Kind::kLookaheadNot;
      return inner;
    }
    if (c == '$') {
      ++pos_;
      auto end = std::make_unique<Node>();
      end->kind = Node::Kind::kEnd;
      return end;
    }
    auto cls = std::make_unique<Node>();
    cls->kind = Node::Kind::kClass;
    if (c == '[') {
      ++pos_;
      if (!AtEnd() && Peek() == '^') {
        cls->negated = true;
        ++pos_;
      }
      while (!AtEnd() && Peek() != ']') {
        uint32_t lo;
        if (Peek() == '\\') {
          STRATA_ASSIGN_OR_RETURN(bool was_class, ParseEscape(cls.get(), &lo));
          if (was_class) continue;
        } else {
          lo = Peek();
          ++pos_;
        }
        uint32_t hi = lo;
        if (pos_ + 1 < cps_.size() && Peek() == '-' && cps_[pos_ + 1] != ']') {
          ++pos_;
          if (Peek() == '\\') {
            STRATA_ASSIGN_OR_RETURN(bool was_class, ParseEscape(cls.get(), &hi));
            if (was_class) return Error("class in range");
          } else {
            hi = Peek();
            ++pos_;
          }
        }
        cls->ranges.emplace_back(lo, hi);
      }
      if (AtEnd()) return Error("missing ']'");
      ++pos_;
      return cls;
    }
    if (c == '\\') {
      uint32_t literal;
      STRATA_ASSIGN_OR_RETURN(bool was_class, ParseEscape(cls.get(), &literal));
      if (!was_class) cls->ranges.emplace_back(literal, literal);
      return cls;
    }
    if (c == '.' || c == '^') return Error("'.' and '^' are unsupported");
    ++pos_;
    cls->ranges.emplace_back(c, c);
    return cls;
  }

  // Parses "\x" at pos_. Returns true if it added a class to `cls` (\s \S \p{..}),
  // false if it is the literal *literal.
  Result<bool> ParseEscape(Node* cls, uint32_t* literal) {
    ++pos_;
    if (AtEnd()) return Error("trailing backslash");
    const uint32_t e = Peek();
    ++pos_;
    switch (e) {
      case 's':
        cls->whitespace = true;
        return true;
      case 'S':
        cls->not_whitespace = true;
        return true;
      case 'r':
        *literal = '\r';
        return false;
      case 'n':
        *literal = '\n';
        return false;
      case 't':
        *literal = '\t';
        return false;
      case 'p': {
        if (pos_ + 2 >= cps_.size() || Peek() != '{' || cps_[pos_ + 2] != '}')
          return Error("bad \\p{}");
        const uint32_t cat = cps_[pos_ + 1];
        pos_ += 3;
        switch (cat) {
          case 'L':
            cls->categories |= unicode::kLetter;
            break;
          case 'M':
            cls->categories |= unicode::kMark;
            break;
          case 'N':
            cls->categories |= unicode::kNumber;
            break;
          case 'P':
            cls->categories |= unicode::kPunct;
            break;
          case 'S':
            cls->categories |= unicode::kSymbol;
            break;
          default:
            return Error("unsupported category");
        }
        return true;
      }
      default:
        *literal = e;  // \\ \- \[ \] \" \/ \' ... stand for themselves
        return false;
    }
  }

  std::vector<uint32_t> cps_;
  size_t pos_ = 0;
};

class Matcher {
 public:
  Matcher(const std::vector<uint32_t>& cps, size_t end) : cps_(cps), end_(end) {}

  bool Alt(const Node& alt, size_t pos, const Cont& k) const {
    for (const auto& seq : alt.children) {
      if (Seq(*seq, 0, pos, k)) return true;
    }
    return false;
  }

 private:
  bool Seq(const Node& seq, size_t i, size_t pos, const Cont& k) const {
    if (i == seq.children.size()) return k(pos);
    const Node& atom = *seq.children[i];
    const Cont next = [&](size_t p) { return Seq(seq, i + 1, p, k); };
    switch (atom.kind) {
      case Node::Kind::kEnd:
        return pos == end_ && next(pos);
      case Node::Kind::kLookaheadNot:
        return !Alt(atom, pos, [](size_t) { return true; }) && next(pos);
      case Node::Kind::kClass: {
        // Greedy: take the longest run, then give back one at a time.
        size_t n = 0;
        const size_t max = atom.max < 0 ? SIZE_MAX : static_cast<size_t>(atom.max);
        while (n < max && pos + n < end_ && atom.MatchesCodepoint(cps_[pos + n])) ++n;
        for (size_t take = n + 1; take-- > static_cast<size_t>(atom.min);) {
          if (next(pos + take)) return true;
        }
        return false;
      }
      case Node::Kind::kAlternation:
      case Node::Kind::kSequence:
        return Repeat(atom, 0, pos, next);
    }
    return false;
  }

  // A quantified group: greedy, at least min and at most max repetitions.
  bool Repeat(const Node& group, int count, size_t pos, const Cont& next) const {
    if (group.max < 0 || count < group.max) {
      const bool more = Alt(group, pos, [&](size_t p) {
        return p != pos && Repeat(group, count + 1, p, next);  // no empty iterations
      });
      if (more) return true;
    }
    return count >= group.min && next(pos);
  }

  const std::vector<uint32_t>& cps_;
  const size_t end_;
};

}  // namespace

Regex::Regex() = default;
Regex::Regex(Regex&&) noexcept = default;
Regex& Regex::operator=(Regex&&) noexcept = default;
Regex::~Regex() = default;

Result<Regex> Regex::Compile(std::string_view pattern) {
  Regex r;
  STRATA_ASSIGN_OR_RETURN(r.root_, Parser(pattern).Parse());
  return r;
}

bool Regex::Find(const std::vector<uint32_t>& cps, size_t from, size_t end, size_t* match_begin,
                 size_t* match_end) const {
  const Matcher m(cps, end);
  for (size_t start = from; start < end; ++start) {
    size_t found = start;
    if (m.Alt(*root_, start, [&](size_t p) {
          found = p;
          return p > start;  // an empty match does not count
        })) {
      *match_begin = start;
      *match_end = found;
      return true;
    }
  }
  return false;
}

std::vector<std::pair<size_t, size_t>> SplitByRegexes(const std::vector<Regex>& regexes,
                                                      const std::vector<uint32_t>& cps) {
  std::vector<std::pair<size_t, size_t>> pieces;
  if (!cps.empty()) pieces.emplace_back(0, cps.size());
  for (const Regex& re : regexes) {
    std::vector<std::pair<size_t, size_t>> next;
    for (const auto& [b, e] : pieces) {
      size_t pos = b, mb, me;
      while (pos < e && re.Find(cps, pos, e, &mb, &me)) {
        if (mb > pos) next.emplace_back(pos, mb);
        next.emplace_back(mb, me);
        pos = me;
      }
      if (pos < e) next.emplace_back(pos, e);
    }
    pieces = std::move(next);
  }
  return pieces;
}

}  // namespace strata::engine

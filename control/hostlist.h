// Host-list folding and matching: {node01..node05,node09} <-> "node[01-05,09]".
// Pure functions, thread-safe.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace herd::control {

// Folds names into a compact, sorted, comma-separated list. Names sharing a
// prefix and suffix around their last run of digits (with the same zero
// padding) collapse into one bracket: node01,node02,node03,node09 ->
// "node[01-03,09]". Names without digits are listed as they are.
std::string FoldHosts(const std::vector<std::string>& names);

// A host-name pattern: literal text, '*' and '?' globs, and numeric ranges
// ("node[01-05,09]"; padding follows the first bound of a range: "[01-10]"
// pads to 2, "[1-10]" does not). Matched against names without expanding the
// ranges, so "node[1-999999]" costs what "node*" costs. Immutable.
class HostPattern {
 public:
  // Errors name the offending text: unbalanced brackets, "[]", non-numbers,
  // descending ranges, bounds of more than 18 digits.
  static Result<HostPattern> Parse(std::string_view pattern);

  // Time linear in pattern pieces x name length (x 19 at a range).
  bool Matches(std::string_view name) const;

 private:
  struct Range {
    unsigned long long lo = 0, hi = 0;
    size_t width = 0;  // zero padding
  };
  struct Piece {
    enum Kind { kLiteral, kStar, kAny, kRange } kind = kLiteral;
    char c = 0;
    std::vector<Range> ranges;  // kRange
  };
  bool MatchFrom(size_t piece, size_t at, std::string_view name,
                 std::vector<signed char>& memo) const;
  bool RangeHolds(const Piece& p, std::string_view digits) const;
  std::vector<Piece> pieces_;
};

}  // namespace herd::control

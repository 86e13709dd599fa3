#include "control/hostlist.h"

#include <algorithm>
#include <cctype>
#include <map>
#include <set>
#include <tuple>

namespace herd::control {
namespace {

struct Parsed {
  std::string prefix, digits, suffix;
};

// Splits around the last run of digits.
bool SplitLastNumber(const std::string& name, Parsed* out) {
  size_t end = name.size();
  while (end > 0 && !std::isdigit(static_cast<unsigned char>(name[end - 1]))) --end;
  if (end == 0) return false;
  size_t begin = end;
  while (begin > 0 && std::isdigit(static_cast<unsigned char>(name[begin - 1]))) --begin;
  if (end - begin > 18) return false;  // would overflow; treat as plain text
  out->prefix = name.substr(0, begin);
  out->digits = name.substr(begin, end - begin);
  out->suffix = name.substr(end);
  return true;
}

std::string Pad(unsigned long long v, size_t width) {
  std::string s = std::to_string(v);
  if (s.size() < width) s.insert(0, width - s.size(), '0');
  return s;
}

}  // namespace

std::string FoldHosts(const std::vector<std::string>& names) {
  // Key: prefix, suffix, pad width (0 = natural numbers without leading zeros).
  using Key = std::tuple<std::string, std::string, size_t>;
  std::map<Key, std::set<unsigned long long>> groups;
  std::set<std::string> plain;
  std::map<std::pair<std::string, std::string>, std::set<size_t>> padded_widths;
  std::vector<Parsed> parsed;
  for (const auto& n : names) {
    Parsed p;
    if (SplitLastNumber(n, &p)) {
      if (p.digits.size() > 1 && p.digits[0] == '0') {
        padded_widths[{p.prefix, p.suffix}].insert(p.digits.size());
      }
      parsed.push_back(std::move(p));
    } else {
      plain.insert(n);
    }
  }
  for (const auto& p : parsed) {
    size_t width = 0;
    if (p.digits.size() > 1 && p.digits[0] == '0') {
      width = p.digits.size();
    } else {
      auto it = padded_widths.find({p.prefix, p.suffix});
      if (it != padded_widths.end() && it->second.count(p.digits.size())) width = p.digits.size();
    }
    groups[{p.prefix, p.suffix, width}].insert(std::stoull(p.digits));
  }

  std::vector<std::string> parts(plain.begin(), plain.end());
  for (const auto& [key, values] : groups) {
    const auto& [prefix, suffix, width] = key;
    if (values.size() == 1) {
      parts.push_back(prefix + Pad(*values.begin(), width) + suffix);
      continue;
    }
    std::string ranges;
    auto it = values.begin();
    while (it != values.end()) {
      unsigned long long lo = *it, hi = *it;
      auto next = std::next(it);
      while (next != values.end() && *next == hi + 1) {
        hi = *next;
        ++next;
      }
      if (!ranges.empty()) ranges += ',';
      ranges += Pad(lo, width);
      if (hi != lo) ranges += "-" + Pad(hi, width);
      it = next;
    }
    parts.push_back(prefix + "[" + ranges + "]" + suffix);
  }
  std::sort(parts.begin(), parts.end());
  std::string out;
  for (const auto& p : parts) {
    if (!out.empty()) out += ',';
    out += p;
  }
  return out;
}

Result<HostPattern> HostPattern::Parse(std::string_view pattern) {
  const std::string whole(pattern);
  HostPattern hp;
  for (size_t i = 0; i < pattern.size(); ++i) {
    const char c = pattern[i];
    Piece piece;
    if (c == '*' || c == '?') {
      piece.kind = c == '*' ? Piece::kStar : Piece::kAny;
    } else if (c == ']') {
      return Status::Invalid("unbalanced ']' in '" + whole + "'");
    } else if (c != '[') {
      piece.c = c;
    } else {
      const size_t close = pattern.find(']', i);
      if (close == std::string_view::npos)
        return Status::Invalid("unclosed '[' in '" + whole + "'");
      const std::string_view body = pattern.substr(i + 1, close - i - 1);
      if (body.empty()) return Status::Invalid("empty range '[]' in '" + whole + "'");
      piece.kind = Piece::kRange;
      size_t pos = 0;
      for (;;) {
        const size_t comma = body.find(',', pos);
        const std::string_view item =
            body.substr(pos, comma == std::string_view::npos ? body.npos : comma - pos);
        const size_t dash = item.find('-');
        const std::string_view lo_s = item.substr(0, dash);
        const std::string_view hi_s = dash == std::string_view::npos ? lo_s : item.substr(dash + 1);
        auto all_digits = [](std::string_view s) {
          return !s.empty() && s.size() <= 18 && std::all_of(s.begin(), s.end(), [](char d) {
            return std::isdigit(static_cast<unsigned char>(d));
          });
        };
        if (!all_digits(lo_s) || !all_digits(hi_s)) {
          return Status::Invalid("bad range '" + std::string(item) + "' in '" + whole +
                                 "' (expected numbers of up to 18 digits like [1-5,8] or [01-10])");
        }
        Range r;
        r.lo = std::stoull(std::string(lo_s));
        r.hi = std::stoull(std::string(hi_s));
        if (r.hi < r.lo) {
          return Status::Invalid("descending range '" + std::string(item) + "' in '" + whole + "'");
        }
        r.width = (lo_s.size() > 1 && lo_s[0] == '0') ? lo_s.size() : 0;
        piece.ranges.push_back(r);
        if (comma == std::string_view::npos) break;
        pos = comma + 1;
      }
      i = close;
    }
    hp.pieces_.push_back(std::move(piece));
  }
  return hp;
}

bool HostPattern::RangeHolds(const Piece& p, std::string_view digits) const {
  const unsigned long long v = std::stoull(std::string(digits));
  for (const auto& r : p.ranges) {
    if (v >= r.lo && v <= r.hi && Pad(v, r.width) == digits) return true;
  }
  return false;
}

// Whether pieces [piece..] match name[at..]; memo holds -1 unknown, 0, 1.
bool HostPattern::MatchFrom(size_t piece, size_t at, std::string_view name,
                            std::vector<signed char>& memo) const {
  if (piece == pieces_.size()) return at == name.size();
  signed char& m = memo[piece * (name.size() + 1) + at];
  if (m >= 0) return m == 1;
  const Piece& p = pieces_[piece];
  bool ok = false;
  switch (p.kind) {
    case Piece::kLiteral:
      ok = at < name.size() && name[at] == p.c && MatchFrom(piece + 1, at + 1, name, memo);
      break;
    case Piece::kAny:
      ok = at < name.size() && MatchFrom(piece + 1, at + 1, name, memo);
      break;
    case Piece::kStar:
      for (size_t k = at; k <= name.size() && !ok; ++k) ok = MatchFrom(piece + 1, k, name, memo);
      break;
    case Piece::kRange:
      for (size_t k = 1; k <= 19 && at + k <= name.size() && !ok; ++k) {
        if (!std::isdigit(static_cast<unsigned char>(name[at + k - 1]))) break;
        ok = RangeHolds(p, name.substr(at, k)) && MatchFrom(piece + 1, at + k, name, memo);
      }
      break;
  }
  m = ok ? 1 : 0;
  return ok;
}

bool HostPattern::Matches(std::string_view name) const {
  if (name.size() > 1024) return false;  // no host name is that long
  std::vector<signed char> memo((pieces_.size() + 1) * (name.size() + 1), -1);
  return MatchFrom(0, 0, name, memo);
}

}  // namespace herd::control

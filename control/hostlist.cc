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

namespace {

Status ExpandInto(std::string_view pattern, std::string_view whole, std::vector<std::string>* out,
                  size_t limit) {
  size_t open = pattern.find('[');
  if (open == std::string_view::npos) {
    if (pattern.find(']') != std::string_view::npos) {
      return Status::Invalid("unbalanced ']' in '" + std::string(whole) + "'");
    }
    out->emplace_back(pattern);
    return Status::Ok();
  }
  size_t close = pattern.find(']', open);
  if (close == std::string_view::npos) {
    return Status::Invalid("unclosed '[' in '" + std::string(whole) + "'");
  }
  std::string_view prefix = pattern.substr(0, open);
  std::string_view body = pattern.substr(open + 1, close - open - 1);
  std::string_view rest = pattern.substr(close + 1);
  if (body.empty()) return Status::Invalid("empty range '[]' in '" + std::string(whole) + "'");

  std::vector<std::string> items;
  size_t pos = 0;
  while (pos <= body.size()) {
    size_t comma = body.find(',', pos);
    std::string_view item =
        body.substr(pos, comma == std::string_view::npos ? body.npos : comma - pos);
    size_t dash = item.find('-');
    std::string_view lo_s = item.substr(0, dash);
    std::string_view hi_s = dash == std::string_view::npos ? lo_s : item.substr(dash + 1);
    auto all_digits = [](std::string_view s) {
      return !s.empty() && s.size() <= 18 &&
             std::all_of(s.begin(), s.end(), [](char c) { return std::isdigit((unsigned char)c); });
    };
    if (!all_digits(lo_s) || !all_digits(hi_s)) {
      return Status::Invalid("bad range '" + std::string(item) + "' in '" + std::string(whole) +
                             "' (expected numbers like [1-5,8] or [01-10])");
    }
    unsigned long long lo = std::stoull(std::string(lo_s)), hi = std::stoull(std::string(hi_s));
    if (hi < lo) {
      return Status::Invalid("descending range '" + std::string(item) + "' in '" +
                             std::string(whole) + "'");
    }
    size_t width = (lo_s.size() > 1 && lo_s[0] == '0') ? lo_s.size() : 0;
    if (width == 0 && lo_s.size() == hi_s.size() && hi_s.size() > 1 && lo_s[0] == '0') {
      width = lo_s.size();
    }
    if (hi - lo + 1 > limit) {
      return Status::Invalid("range '" + std::string(item) + "' is too large");
    }
    for (unsigned long long v = lo; v <= hi; ++v) items.push_back(Pad(v, width));
    if (comma == std::string_view::npos) break;
    pos = comma + 1;
  }
  for (const auto& item : items) {
    std::string next = std::string(prefix) + item + std::string(rest);
    if (out->size() > limit) return Status::Invalid("'" + std::string(whole) + "' is too large");
    Status s = ExpandInto(next, whole, out, limit);
    if (!s.ok()) return s;
  }
  return Status::Ok();
}

}  // namespace

Result<std::vector<std::string>> ExpandHosts(std::string_view pattern) {
  std::vector<std::string> out;
  Status s = ExpandInto(pattern, pattern, &out, 1'000'000);
  if (!s.ok()) return s;
  return out;
}

}  // namespace herd::control

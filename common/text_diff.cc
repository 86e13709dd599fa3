#include "common/text_diff.h"

#include <fmt/format.h>

#include <vector>

namespace herd {
namespace {

// Lines with their newline; a last line without one is marked as diff does.
std::vector<std::string> SplitLines(const std::string& text) {
  std::vector<std::string> lines;
  size_t at = 0;
  while (at < text.size()) {
    const size_t nl = text.find('\n', at);
    if (nl == std::string::npos) {
      lines.push_back(text.substr(at) + "\n\\ No newline at end of file\n");
      break;
    }
    lines.push_back(text.substr(at, nl + 1 - at));
    at = nl + 1;
  }
  return lines;
}

enum class Op { kKeep, kDelete, kInsert };

// The shortest edit script from `a` to `b` (Myers 1986), or false when it
// needs more than `max_d` edits.
bool EditScript(const std::vector<std::string>& a, const std::vector<std::string>& b, size_t max_d,
                std::vector<Op>* ops) {
  const long n = static_cast<long>(a.size()), m = static_cast<long>(b.size());
  const long max = n + m, offset = max + 1;
  std::vector<long> v(2 * max + 3, 0);
  std::vector<std::vector<long>> trace;
  long d_end = -1;
  for (long d = 0; d <= max && d <= static_cast<long>(max_d); ++d) {
    // Only the frontier this step reads: diagonals -d-1 to d+1.
    trace.emplace_back(v.begin() + (offset - d - 1), v.begin() + (offset + d + 2));
    for (long k = -d; k <= d; k += 2) {
      long x = (k == -d || (k != d && v[offset + k - 1] < v[offset + k + 1]))
                   ? v[offset + k + 1]
                   : v[offset + k - 1] + 1;
      long y = x - k;
      while (x < n && y < m && a[x] == b[y]) ++x, ++y;
      v[offset + k] = x;
      if (x >= n && y >= m) {
        d_end = d;
        break;
      }
    }
    if (d_end >= 0) break;
  }
  if (d_end < 0) return false;
  // Back from (n, m) through the saved frontiers.
  std::vector<Op> rev;
  long x = n, y = m;
  for (long d = d_end; d > 0; --d) {
    const std::vector<long>& pv = trace[d];  // pv[k + d + 1] is diagonal k
    const long k = x - y;
    const bool down = k == -d || (k != d && pv[k - 1 + d + 1] < pv[k + 1 + d + 1]);
    const long pk = down ? k + 1 : k - 1;
    const long px = pv[pk + d + 1], py = px - pk;
    while (x > px + (down ? 0 : 1) && y > py + (down ? 1 : 0)) {
      rev.push_back(Op::kKeep);
      --x, --y;
    }
    rev.push_back(down ? Op::kInsert : Op::kDelete);
    x = px, y = py;
  }
  while (x > 0 && y > 0) {
    rev.push_back(Op::kKeep);
    --x, --y;
  }
  ops->assign(rev.rbegin(), rev.rend());
  return true;
}

}  // namespace

std::string UnifiedDiff(const std::string& before, const std::string& after,
                        const std::string& path, size_t context) {
  if (before == after) return "";
  const auto a = SplitLines(before), b = SplitLines(after);
  std::vector<Op> ops;
  if (a.size() > kMaxDiffLines || b.size() > kMaxDiffLines ||
      !EditScript(a, b, kMaxDiffEdits, &ops)) {
    return fmt::format(
        "--- {}\n+++ {}\n(too many changes to show: {} lines, {} bytes before; {} "
        "lines, {} bytes after)\n",
        path, path, a.size(), before.size(), b.size(), after.size());
  }
  std::string out = "--- " + path + "\n+++ " + path + "\n";
  // Hunks: runs of changes, joined when at most 2 * context kept lines apart.
  size_t i = 0;
  while (i < ops.size()) {
    if (ops[i] == Op::kKeep) {
      ++i;
      continue;
    }
    size_t end = i;  // one past the hunk's last change
    for (size_t j = i; j < ops.size(); ++j) {
      if (ops[j] != Op::kKeep) {
        end = j + 1;
      } else if (j - end + 1 > 2 * context) {
        break;
      }
    }
    const size_t start = i >= context ? i - context : 0;
    const size_t stop = std::min(ops.size(), end + context);
    // Line numbers where the hunk starts, in both texts.
    size_t ai = 0, bi = 0;
    for (size_t j = 0; j < start; ++j) {
      if (ops[j] != Op::kInsert) ++ai;
      if (ops[j] != Op::kDelete) ++bi;
    }
    size_t alen = 0, blen = 0;
    std::string body;
    for (size_t j = start, x = ai, y = bi; j < stop; ++j) {
      if (ops[j] == Op::kKeep) {
        body += " " + a[x++];
        ++y, ++alen, ++blen;
      } else if (ops[j] == Op::kDelete) {
        body += "-" + a[x++];
        ++alen;
      } else {
        body += "+" + b[y++];
        ++blen;
      }
    }
    out += fmt::format("@@ -{},{} +{},{} @@\n", alen ? ai + 1 : ai, alen, blen ? bi + 1 : bi, blen);
    out += body;
    i = stop;
  }
  return out;
}

}  // namespace herd

#include "agent/security/audit_log.h"

#include <spdlog/spdlog.h>

#include <chrono>
#include <nlohmann/json.hpp>

#include "common/hash.h"

namespace herd::agent {
namespace {

// One "key":value member, escaped as nlohmann::json escapes (invalid UTF-8
// replaced), without building a JSON object per line.
template <class T>
void Member(std::string& out, const char* key, const T& value) {
  out += out.empty() ? "{\"" : ",\"";
  out += key;
  out += "\":";
  out += nlohmann::json(value).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

double Now() {
  using namespace std::chrono;
  return duration<double>(system_clock::now().time_since_epoch()).count();
}

// The entry's members before `prev` (keys in alphabetical order).
std::string Start(const AuditEntry& e) {
  std::string line;
  line.reserve(260 + e.caller.size() + e.args.size() + e.result.size());
  Member(line, "args", e.args);
  Member(line, "caller", e.caller);
  Member(line, "method", e.method);
  return line;
}

// An entry of ours: a JSON object with a numeric ts.
nlohmann::json ParseEntry(const std::string& line) {
  auto j = nlohmann::json::parse(line, nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.contains("ts") || !j["ts"].is_number()) {
    return nlohmann::json();
  }
  return j;
}

bool IsChained(const std::string& line) {
  auto j = ParseEntry(line);
  return j.is_object() && j.contains("seq") && j["seq"].is_number_unsigned();
}

}  // namespace

AuditLog::AuditLog(std::string dir, uint64_t max_bytes, int keep, const Clock& clock)
    : accepted_(dir + "/audit.log", max_bytes, keep),
      refused_(dir + "/refusals.log", max_bytes, std::min(keep, 2)),
      clock_(clock) {
  // The chain goes on from the newest entry a previous herdd wrote.
  const std::string last = accepted_.LastLine(IsChained);
  if (!last.empty()) {
    head_.seq = ParseEntry(last)["seq"].get<uint64_t>();
    head_.hash = Sha256Hex(last);
  }
}

Status AuditLog::Append(const AuditEntry& e, bool sync) {
  const std::string start = Start(e);
  Result<UniqueFd> written = UniqueFd();
  {
    std::lock_guard<std::mutex> l(chain_mu_);
    std::string line = start;
    Member(line, "prev", head_.hash.empty() ? std::string(64, '0') : head_.hash);
    Member(line, "result", e.result);
    Member(line, "role", e.role);
    Member(line, "seq", head_.seq + 1);
    Member(line, "ts", Now());
    line += "}";
    const std::string hash = Sha256Hex(line);
    written = accepted_.Write(line + "\n", sync);
    if (written.ok()) {
      ++head_.seq;
      head_.hash = hash;
    }
  }
  if (!written.ok()) return Report(e, written.status());
  LineLog::Sync(std::move(*written));
  return Status::Ok();
}

Status AuditLog::AppendRefusal(AuditEntry e, const std::string& who) {
  {
    std::lock_guard<std::mutex> l(refusal_mu_);
    const auto now = clock_.Now();
    if (!window_started_ || now - window_ >= std::chrono::minutes(1)) {
      window_started_ = true;
      window_ = now;
      window_total_ = 0;
      // Budgets with nothing held back are forgotten; the others keep their count.
      for (auto it = budgets_.begin(); it != budgets_.end();) {
        it->second.used = 0;
        it = it->second.held_back ? std::next(it) : budgets_.erase(it);
      }
    }
    // A caller nobody knows may be anyone: they share one budget.
    std::string key = who.empty() ? std::string() : "serial:" + who;
    const int per_caller = who.empty() ? kAnonymousPerMinute : kRefusalsPerCaller;
    // Memory stays bounded whatever the callers: beyond 10,000 of them in a
    // minute, the newcomers share one budget.
    if (budgets_.size() >= 10'000 && budgets_.count(key) == 0) key = "many";
    Budget& b = budgets_[key];
    if (b.used >= per_caller || window_total_ >= kRefusalsPerMinute) {
      ++b.held_back;
      return Status::Ok();
    }
    ++b.used;
    ++window_total_;
    if (b.held_back > 0) {
      e.args += (e.args.empty() ? "" : " ") + std::string("(") + std::to_string(b.held_back) +
                " earlier refusals of this caller not recorded: rate limit)";
      b.held_back = 0;
    }
  }
  std::string line = Start(e);
  Member(line, "result", e.result);
  Member(line, "role", e.role);
  Member(line, "ts", Now());
  line += "}\n";
  auto written = refused_.Write(std::move(line), true);
  if (!written.ok()) return Report(e, written.status());
  LineLog::Sync(std::move(*written));
  return Status::Ok();
}

Status AuditLog::Report(const AuditEntry& e, Status st) {
  ++write_errors_;
  if (on_write_error_) on_write_error_();
  int left_out = 0;
  if (error_lines_.Allow(&left_out)) {
    spdlog::error("audit entry not recorded ({} {}: {}): {}{}", e.caller, e.method, e.result,
                  st.message(),
                  left_out ? fmt::format(" ({} more failed writes not logged)", left_out) : "");
  }
  return st;
}

std::vector<std::string> AuditLog::Read(int64_t since, size_t limit) const {
  // Each log's entries at or after `since`, oldest first; then merged by time.
  auto entries = [&](const LineLog& log) {
    std::vector<std::pair<double, std::string>> out;
    for (auto& line : log.ReadLines()) {
      auto j = ParseEntry(line);
      // A torn line after a crash, or one that is not ours: skipped, not fatal.
      if (!j.is_object()) continue;
      const double ts = j["ts"].get<double>();
      if (ts >= static_cast<double>(since)) out.emplace_back(ts, std::move(line));
    }
    return out;
  };
  const auto a = entries(accepted_), r = entries(refused_);
  std::vector<std::string> out;
  size_t i = 0, k = 0;
  while (out.size() < limit && (i < a.size() || k < r.size())) {
    if (k >= r.size() || (i < a.size() && a[i].first <= r[k].first)) {
      out.push_back(a[i++].second);
    } else {
      out.push_back(r[k++].second);
    }
  }
  return out;
}

AuditLog::Head AuditLog::head() const {
  std::lock_guard<std::mutex> l(chain_mu_);
  return head_;
}

}  // namespace herd::agent

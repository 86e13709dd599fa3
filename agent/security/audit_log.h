// AuditLog: the device's record of what was done to it, and apart from it,
// of the calls it refused.
//
// <state_dir>/audit.log holds the accepted calls that act on the device (one
// JSON object per line: args, caller, method, prev, result, role, seq, ts).
// Its entries are hash-chained: `seq` counts up by one and `prev` is the
// SHA-256 of the previous entry's line, across rotations and restarts, so an
// edited, removed or reordered entry shows (`herd audit --verify`). Lines are
// fsynced before Append returns (crash-safe: a torn last line at worst,
// which readers skip); Append(e, false) leaves the fsync to the next synced
// line or the rotation.
//
// <state_dir>/refusals.log holds the refused calls, in its own bounded file
// and at a bounded rate per caller (and in all), with counts of what was left
// out: no volume of refusals can push the record of what was done out of
// audit.log. Both rotate past max_bytes to NAME.1 .. NAME.<keep>. There is no
// API to modify either.
//
// A line that cannot be written is never dropped in silence: Append returns
// the error, logs it (at most one line per 10 s, with the count of the
// others) and calls the write-error hook (herd_audit_write_errors_total).
// Thread-safe.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "agent/security/line_log.h"
#include "common/clock.h"
#include "common/rate_limiter.h"
#include "common/status.h"

namespace herd::agent {

struct AuditEntry {
  std::string caller;  // certificate name, "plaintext:<peer>", "unverified:<name>", ...
  std::string role;
  std::string method;
  std::string args;    // a summary: never secrets or file contents
  std::string result;  // "ok", "denied: ...", "failed: ..."
};

class AuditLog {
 public:
  AuditLog(std::string dir, uint64_t max_bytes = 1 << 20, int keep = 5,
           const Clock& clock = Clock::Real());
  AuditLog(const AuditLog&) = delete;
  AuditLog& operator=(const AuditLog&) = delete;
  // Called (on the appending thread) for every line that could not be
  // written. Set once, before the first Append.
  void OnWriteError(std::function<void()> hook) { on_write_error_ = std::move(hook); }
  // How many lines could not be written since start.
  uint64_t write_errors() const { return write_errors_.load(); }

  // An accepted call, chained. `sync` false skips the fsync: the line still
  // outlives a crash of the agent (it is in the kernel), only not one of the
  // machine. For the "started" line of a command, whose result line is
  // synced after it.
  Status Append(const AuditEntry& e, bool sync = true);

  // A refused call, to refusals.log: at most kRefusalsPerCaller a minute for
  // `who` (a certificate serial; "" for callers nobody authenticated, who
  // share one budget of kAnonymousPerMinute) and kRefusalsPerMinute in all.
  // What is held back is counted, and the count written with that caller's
  // next line let through.
  static constexpr int kRefusalsPerCaller = 20;
  static constexpr int kAnonymousPerMinute = 30;
  static constexpr int kRefusalsPerMinute = 120;
  Status AppendRefusal(AuditEntry e, const std::string& who);

  // Entries of both logs at or after `since` (unix seconds), merged oldest
  // first, at most `limit`.
  std::vector<std::string> Read(int64_t since, size_t limit) const;

  // The newest entry of the chain: its seq and the SHA-256 of its line.
  struct Head {
    uint64_t seq = 0;
    std::string hash;
  };
  Head head() const;
  const std::string& path() const { return accepted_.path(); }

 private:
  Status Report(const AuditEntry& e, Status st);  // the hook, the counter, the log line
  LineLog accepted_, refused_;
  mutable std::mutex chain_mu_;  // orders accepted lines with their seq and prev
  Head head_;
  std::mutex refusal_mu_;  // guards the per-caller budgets below
  struct Budget {
    int used = 0, held_back = 0;
  };
  std::map<std::string, Budget> budgets_;
  const Clock& clock_;
  Clock::time_point window_{};
  bool window_started_ = false;
  int window_total_ = 0;
  RateLimiter error_lines_{1, std::chrono::seconds(10)};
  std::atomic<uint64_t> write_errors_{0};
  std::function<void()> on_write_error_;
};

}  // namespace herd::agent

// AuditLog: the device's record of every mutating call and every denied call.
// One JSON object per line in <state_dir>/audit.log, kept open and appended
// with O_APPEND, fsynced before Append returns (crash-safe: a torn last line
// at worst, which readers skip); Append(e, false) leaves the fsync to the
// next synced line or the rotation. Bounded: past max_bytes the file rotates
// to audit.log.1 .. audit.log.<keep>. There is no API to modify it.
//
// A line that cannot be written is never dropped in silence: Append returns
// the error, logs it (at most one line per 10 s, with the count of the
// others) and calls the write-error hook (herd_audit_write_errors_total).
// Thread-safe.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

#include "common/rate_limiter.h"
#include "common/status.h"

namespace herd::agent {

struct AuditEntry {
  std::string caller;  // certificate name, or "plaintext:<peer>"
  std::string role;
  std::string method;
  std::string args;    // a summary: never secrets or file contents
  std::string result;  // "ok", "denied: ...", "failed: ..."
};

class AuditLog {
 public:
  AuditLog(std::string dir, uint64_t max_bytes = 1 << 20, int keep = 5);
  ~AuditLog();
  AuditLog(const AuditLog&) = delete;
  AuditLog& operator=(const AuditLog&) = delete;
  // Called (on the appending thread) for every line that could not be
  // written. Set once, before the first Append.
  void OnWriteError(std::function<void()> hook) { on_write_error_ = std::move(hook); }
  // How many lines could not be written since start.
  uint64_t write_errors() const { return write_errors_.load(); }
  // `sync` false skips the fsync: the line still outlives a crash of the
  // agent (it is in the kernel), only not one of the machine. For the
  // "started" line of a command, whose result line is synced after it.
  Status Append(const AuditEntry& e, bool sync = true);
  // For refusals of callers nobody has authenticated (no certificate, a
  // wrong join token): at most kAnonymousPerMinute lines a minute, so that
  // outsiders cannot rotate the real record away. Refusals over the limit
  // are counted, and the count is written with the next line let through.
  static constexpr int kAnonymousPerMinute = 30;
  Status AppendAnonymous(AuditEntry e);
  // Entries at or after `since` (unix seconds), oldest first, at most `limit`.
  std::vector<std::string> Read(int64_t since, size_t limit) const;
  const std::string& path() const { return path_; }

 private:
  Status AppendLine(std::string line, bool sync);
  Status OpenLocked();  // opens audit.log unless open; learns its size and end
  void CloseLocked();
  void RotateLocked();
  const std::string dir_, path_;
  const uint64_t max_bytes_;
  const int keep_;
  mutable std::mutex mu_;  // serialises appends, rotation and reads; guards below
  int fd_ = -1;            // audit.log, open between appends
  uint64_t size_ = 0;      // its size
  bool torn_ = false;      // it ends in a line torn by a crash
  dev_t dev_ = 0;          // which file it is, to notice it moved away
  ino_t ino_ = 0;
  RateLimiter anonymous_{kAnonymousPerMinute, std::chrono::minutes(1)};
  RateLimiter error_lines_{1, std::chrono::seconds(10)};
  std::atomic<uint64_t> write_errors_{0};
  std::function<void()> on_write_error_;
};

}  // namespace herd::agent

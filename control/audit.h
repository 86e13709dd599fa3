// `herd audit`: each device's record of what was done to it and of what it
// refused, and the check of its hash chain (agent/security/audit_log.h).
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "control/task.h"

namespace herd::control {

// Each agent's entries from `since_unix` (accepted and refused, oldest
// first); they land in the result's stdout (one line each for people) and
// data.entries.
Task AuditTask(int64_t since_unix, uint32_t limit, std::chrono::milliseconds timeout);

// What the chain of accepted entries (those with "seq") says.
struct ChainReport {
  bool intact = true;
  size_t entries = 0;  // chained entries looked at
  uint64_t first_seq = 0, last_seq = 0;
  std::string head;                   // SHA-256 of the newest entry: compare it over time
  std::vector<std::string> problems;  // "seq 41: ..." for each break
};
// Checks that seq counts up by one and each entry's prev is the SHA-256 of
// the entry before it. The oldest entry kept is taken as it is (its
// predecessor may have rotated away), unless it is seq 1.
ChainReport VerifyAuditChain(const std::vector<std::string>& lines);

// Every entry each agent keeps, its chain checked: ok when intact (the
// summary gives the head), failed with the breaks otherwise.
Task AuditVerifyTask(std::chrono::milliseconds timeout);

// One entry for people: "2026-11-25 05:43:06Z admin (admin) Exec
// argv[0]=sh args=2: ok exit=0", control characters escaped (a name from a
// certificate may hold terminal escapes); the raw line, escaped, when it is
// not an entry.
std::string AuditLine(const std::string& raw);

}  // namespace herd::control

// The small system pieces of supervising an app's process (supervisor.h):
// its identity in /proc, the sockets handed to it, bwrap's status file, its
// log file. Plain functions; thread-safe.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "common/app/manifest.h"
#include "common/status.h"
#include "common/unique_fd.h"

namespace herd::agent {

// The start time of process `pid` (clock ticks after boot, /proc/PID/stat),
// 0 when there is no such process: with the pid, a process's identity.
int64_t ProcStartTime(pid_t pid);

// The live processes (zombies left out) whose real or effective uid is in
// `uids`, by scanning `proc` (/proc; tests pass a folder of their own).
std::vector<std::pair<pid_t, uid_t>> ProcessesOf(const std::set<uid_t>& uids,
                                                 const std::string& proc = "/proc");

// SIGKILLs the processes of `uids` and waits up to `wait` until they are
// gone. Returns those it killed; `*left` how many still ran at the end.
std::vector<std::pair<pid_t, uid_t>> KillProcessesOf(const std::set<uid_t>& uids,
                                                     std::chrono::milliseconds wait, size_t* left);

// Resident memory (bytes) and CPU time used (seconds) of process `pid`.
struct ProcUsage {
  uint64_t rss_bytes = 0;
  double cpu_seconds = 0;
};
ProcUsage UsageOf(pid_t pid);

// A listening TCP socket on address:port (SO_REUSEADDR, close-on-exec).
Result<UniqueFd> ListenSocket(const std::string& address, int port);

// What bwrap wrote to its --json-status-fd file: the app's pid (its
// "child-pid"), and once it ended its "exit-code". 0 / nothing before.
int64_t StatusChildPid(const std::string& path);
std::optional<int> StatusExitCode(const std::string& path);

// The first folder from / down to `dir` (included) that other users may
// not pass through (no o+x), or "": apps' uids reach their files by path.
std::string ClosedAncestor(const std::string& dir);

// The app spec of installed version `seq` of `name` below apps folder `dir`.
Result<app::AppSpec> InstalledSpec(const std::string& dir, const std::string& name, uint64_t seq);

// Keeps `path` under about `max_bytes`: beyond, its bytes go to PATH.1
// (replacing the older) and it is emptied; writers appending (O_APPEND)
// go on at its new end.
void RotateLog(const std::string& path, uint64_t max_bytes);

// The last `lines` lines of `path` and of PATH.1 before it, at most
// `max_bytes` bytes.
std::string TailLog(const std::string& path, size_t lines, size_t max_bytes);
// The bytes of `path` from `*offset` on (from 0 when the file is shorter:
// rotated), at most `max_bytes`; `*offset` becomes where they end.
std::string ReadLogFrom(const std::string& path, uint64_t* offset, size_t max_bytes);

}  // namespace herd::agent

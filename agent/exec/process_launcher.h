// ProcessLauncher: starts a child the way herdd runs anything (commands now,
// app processes later): in a process group of its own, with stdin, stdout
// and stderr on pipes, a whole environment and a working directory, and
// with the signal mask and dispositions of a fresh process (herdd blocks
// TERM/INT/HUP and ignores PIPE; its children must not inherit that), and
// with the resource limits and descriptors the spec asks for (the app
// sandbox, agent/apps/sandbox.h, uses both).
//
// ProcessLauncher::Real() forks without running fork handlers (_Fork), and
// the child switches to the spec's account (groups, gid, uid: raw system
// calls, the child's alone) before it execs; tests substitute their own.
// Launch may be called from any thread.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "agent/security/account.h"
#include "common/status.h"
#include "common/unique_fd.h"

namespace herd::agent {

struct LaunchSpec {
  std::vector<std::string> argv;     // argv[0] is looked up in PATH
  std::vector<std::string> env;      // the child's whole environment, KEY=VALUE
  std::string cwd;                   // "" keeps the agent's
  const Account* account = nullptr;  // run as; null (or the agent's own): no switch
  // Descriptors (above 2) the child keeps under the same numbers: their
  // close-on-exec flag is cleared in the child alone.
  std::vector<int> pass_fds;
  // Descriptors the child gets under other numbers: {the parent's, the
  // child's} (the app sandbox: LISTEN_FDS sockets from 3 on).
  std::vector<std::pair<int, int>> map_fds;
  // The child's stdout and stderr, when not pipes (-1: a pipe, the Child's
  // end set): an app's log file. stdin is then /dev/null.
  int stdout_fd = -1, stderr_fd = -1;
  // cgroup.procs files (open for writing) the child joins before it
  // switches account: it writes "0" to each.
  std::vector<int> join_fds;
  // Resource limits set in the child before it switches account (soft and
  // hard alike): {RLIMIT_AS, bytes}, {RLIMIT_NPROC, n}, ...
  std::vector<std::pair<int, uint64_t>> rlimits;
};

// A started child. Its pid is also its process group id. The descriptors
// are the parent's ends of the pipes, close-on-exec; `pidfd` polls readable
// once the child has exited (invalid where the kernel has no pidfd_open).
// Destroying a Child closes them and neither kills nor reaps the child:
// its owner does that (kill(-pid, ...), waitpid).
struct Child {
  pid_t pid = -1;
  UniqueFd stdin_w, stdout_r, stderr_r, pidfd;
};

class ProcessLauncher {
 public:
  virtual ~ProcessLauncher() = default;
  // The running child, or kNotFound "command not found: NAME" when argv[0]
  // is not found, or another error naming the program.
  virtual Result<Child> Launch(const LaunchSpec& spec) = 0;

  // The real launcher (fork without handlers, then exec); lives as long as the process.
  static ProcessLauncher& Real();
};

// The environment of a command: the agent's own, with HOME, USER and LOGNAME
// of `account` (when given), and `extra` added (each replacing variables of
// the same name).
std::vector<std::string> MergeEnvironment(const std::map<std::string, std::string>& extra,
                                          const Account* account = nullptr);

}  // namespace herd::agent

// Sandbox: how an app's process starts (docs/apps.md). bubblewrap, started
// as the app's own unprivileged uid (never as root: bwrap run by root with a
// user namespace maps back to root), with every namespace of its own (user,
// pid, ipc, uts, mount, cgroup; network unless the app may go outbound), no
// capabilities, no further user namespaces, and a file system of:
//
//   /usr (and the /bin, /lib, ... links to it)   read-only, the host's
//   a few files of /etc (resolv.conf, hosts, ssl certificates, time zone)
//   /app     the version's files, read-only
//   /data    the app's data folder, the only writable place but for
//   /tmp     a private tmpfs
//   /proc    its own pid namespace's; /dev a minimal one
//
// The two folders are handed to bwrap as descriptors opened by herdd (they
// pin the folders); bwrap resolves them to their paths as the app's uid, so
// the folders above must be traversable (the apps folder is 0711 and lives
// beside herdd's 0700 state directory, not in it). Resource limits: rlimits
// always (address space for memory, processes per uid for pids: the uid is
// the app's alone).
//
// Pure functions and one system-call wrapper; thread-safe.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "agent/exec/process_launcher.h"
#include "common/status.h"

namespace herd::agent {

struct SandboxSpec {
  std::string name;   // the app's (also the sandbox's host name)
  int files_fd = -1;  // the version's files folder (O_PATH or O_RDONLY)
  int data_fd = -1;   // the app's data folder
  uid_t uid = 0;      // the app's own; never 0
  gid_t gid = 0;
  bool network = false;              // share the host's network (permissions.network: outbound)
  std::vector<std::string> command;  // argv, run in /app
  std::map<std::string, std::string> env;
  uint64_t memory_bytes = 0;         // RLIMIT_AS; 0: none
  uint64_t pids = 0;                 // RLIMIT_NPROC; 0: none
  uint64_t tmp_bytes = 64ull << 20;  // size of the private /tmp
  // Listening sockets made on the host, handed over by the LISTEN_FDS
  // convention (from descriptor 3 on, LISTEN_PID=1, LISTEN_FDNAMES).
  std::vector<int> listen_fds;
  std::vector<std::string> listen_names;
  int status_fd = -1;  // bwrap's --json-status-fd (the app's pid, then its exit code)
  int log_fd = -1;     // stdout and stderr; -1: pipes
};

// bubblewrap's argv for `s` (the program first). `bwrap` is its path.
std::vector<std::string> BwrapArgv(const SandboxSpec& s, const std::string& bwrap = "bwrap");

// The launch of `s`: bwrap's argv, an environment of nothing but PATH, the
// app's uid and gid without supplementary groups, the descriptors passed on
// (renumbered: the listening sockets first), the rlimits. kFailedPrecondition for uid 0 or a
// missing descriptor.
Result<LaunchSpec> SandboxLaunch(const SandboxSpec& s, Account* account_storage,
                                 const std::string& bwrap = "bwrap");

}  // namespace herd::agent

// AppCgroups: memory and pids limits of apps through the host's cgroups,
// where it has them (docs/apps.md, "Limits"): cgroup v2 (one unified
// hierarchy) or v1 (a memory and a pids hierarchy, as on hosts with hybrid
// cgroups), each app in a group of its own, herd-apps/<name>. Where neither
// can be used (not root, controllers absent or read-only), apps are bound
// by their rlimits alone -- they always are, cgroups or not -- and mode()
// says so. The app joins its group before it execs (LaunchSpec::join_fds),
// so nothing it starts escapes it.
//
// Thread-safe after construction (no state but the mode and paths).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"
#include "common/unique_fd.h"

namespace herd::agent {

class AppCgroups {
 public:
  // Probes the host below `root` (/sys/fs/cgroup; tests pass their own).
  explicit AppCgroups(std::string root = "/sys/fs/cgroup");

  // "cgroup-v2", "cgroup-v1" or "rlimit".
  const std::string& mode() const { return mode_; }

  // Makes (or reuses) the app's group(s) with these limits and opens their
  // cgroup.procs for the child to join. Nothing in rlimit mode; an error
  // leaves the app to its rlimits (the caller logs it).
  Result<std::vector<UniqueFd>> Prepare(const std::string& app, uint64_t memory_bytes,
                                        uint64_t pids);
  // Memory the app's whole group uses, 0 when unknown.
  uint64_t MemoryBytes(const std::string& app) const;
  // Removes the app's (empty) group(s).
  void Remove(const std::string& app) const;

 private:
  std::vector<std::string> Dirs(const std::string& app) const;
  std::string root_, mode_ = "rlimit";
};

}  // namespace herd::agent

// The fan-out commands' tasks (control/task.h): ping, facts, health, run,
// copy, app install and apps (audit: control/audit.h). Each builds its operation from the
// command's options and reads every host's replies into one HostResult.
// Certificate renewal, which takes two calls per host, is control/renew.h.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "common/defaults.h"
#include "common/unique_fd.h"
#include "control/task.h"

namespace herd::control {

Task PingTask(std::chrono::milliseconds timeout);
Task FactsTask(std::chrono::milliseconds timeout);
Task HealthTask(std::chrono::milliseconds timeout);

// `herd run`: a command on every host.
struct CommandSpec {
  std::vector<std::string> argv;  // run directly, or...
  std::string shell;              // ...this line through /bin/sh -c (exactly one of the two)
  std::vector<std::string> env;   // KEY=VALUE each
  std::string cwd;                // "" : the home of the account it runs as
  size_t max_output = 1 << 20;    // bytes of stdout and of stderr kept per host
  bool root = false;              // run as root (the device must allow it)
  std::string stdin_data;         // the command's stdin on every host (at most kMaxStdin)
  // Per host; the agent stops the command a little before it.
  std::chrono::milliseconds timeout = kDefaultCommandTimeout;
};
// What `herd run` forwards of its own stdin, at most: the request carries it.
constexpr size_t kMaxStdin = 1 << 20;
// Errors name the flag: "--env expects KEY=VALUE, got 'X'".
Result<Task> ExecTask(const CommandSpec& spec);

// Per-command deadline budget: the agent kills the command a little before
// the CLI gives up on the host, so a slow command ends as "timeout", not
// "unreachable".
uint32_t AgentTimeoutMs(std::chrono::milliseconds host_timeout);

// A byte count for people: "1.5 MiB".
std::string Bytes(uint64_t b);

// `herd copy`: a local file to a path on every host. The file is read twice
// in chunks (once for its SHA-256, then by each host's upload as it sends):
// memory stays bounded whatever its size.
struct CopySource {
  std::shared_ptr<const UniqueFd> fd;  // read with pread: shared by every upload
  uint64_t size = 0;
  std::string sha256;
  uint32_t mode = 0644;
};
// Opens and hashes a local file for `herd copy`; the mode is the file's own.
Result<CopySource> ReadCopySource(const std::string& path);
// The file's chunks from byte `from` on, as an upload's messages (field 2,
// `chunk`, of PutFileMessage and of InstallMessage alike).
std::shared_ptr<const StreamSource> FileChunks(CopySource source, uint64_t from = 0);

struct CopySpec {
  std::string src, dest;     // dest absolute
  std::string mode;          // octal text ("0644"); "": a replaced file's, or SRC's for a new one
  std::string owner, group;  // names or numbers; "": a replaced file's, or the writer's
  bool root = false;         // write as root (the device must allow it)
  bool allow_setid = false;  // setuid, setgid or sticky bits may result
  std::chrono::milliseconds timeout = kDefaultCommandTimeout;
};
// Errors name the argument or flag.
Result<Task> CopyTask(const CopySpec& spec);

// `herd app install`: a signed bundle (.herd) to every host, which checks
// it against its own trust and policy and installs it (docs/apps.md). Read
// in chunks like `herd copy`'s file (control/app_install.cc).
struct InstallSpec {
  std::string bundle;
  bool allow_downgrade = false;
  std::chrono::milliseconds timeout = kDefaultCommandTimeout;
};
// Each host is first asked how much of the bundle it holds (InstallStatus):
// an upload cut short resumes where it ended, and a host that has the
// bundle installed receives none of it. A host that cannot be asked (not
// reachable, refused) ends with that answer; an agent without
// InstallStatus gets the whole bundle.
std::vector<HostResult> InstallApp(Executor& executor, const std::vector<const Host*>& hosts,
                                   const InstallSpec& spec, const CopySource& bundle,
                                   Reporter& reporter);

// `herd app install TARGET NAME[@VERSION]`: each host fetches the app from
// its own catalogues and verifies it end to end (docs/catalog.md).
// `resolve_only`: each host only says which version it would install.
struct CatalogInstallSpec {
  std::string name, version, channel;
  bool allow_downgrade = false, resolve_only = false;
  std::chrono::milliseconds timeout = kDefaultCommandTimeout;
};
Task CatalogInstallTask(const CatalogInstallSpec& spec);

// `herd apps`: the apps installed on every host, their versions and what
// runs (control/app_tasks.cc, as the tasks below).
Task ListAppsTask(std::chrono::milliseconds timeout);

// `herd app activate` / `herd app rollback`: a host whose activation
// reverted (rolled-back, failed) is a failed host (exit code 2).
struct ActivateSpec {
  std::string name, version;
  bool rollback = false, restore_data = false, no_snapshot = false;
  std::string rollout_id;  // herd rollout's: recorded with the activation on the device
  std::chrono::milliseconds timeout{600'000};
};
Result<Task> ActivateTask(const ActivateSpec& spec);

// `herd app remove`: data kept unless `purge` (admin).
Result<Task> RemoveAppTask(const std::string& name, bool purge, std::chrono::milliseconds timeout);

// `herd logs`: the last `tail` lines of an app's log on every host.
Result<Task> AppLogsTask(const std::string& name, uint32_t tail, std::chrono::milliseconds timeout);

// `herd logs --follow`: the last `tail` lines, then what each host's log
// gains, every `every`, until `stop` holds (Ctrl-C). The lines go to
// reporter.OnOutput as they come; a host's error is reported once; the
// reporter's OnFinish gets the last complete round's results.
std::vector<HostResult> FollowAppLogs(Executor& executor, const std::vector<const Host*>& hosts,
                                      const std::string& name, uint32_t tail,
                                      std::chrono::milliseconds timeout, Reporter& reporter,
                                      const std::atomic<bool>& stop,
                                      std::chrono::milliseconds every = std::chrono::seconds(1));

}  // namespace herd::control

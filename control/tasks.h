// The fan-out commands' tasks (control/task.h): ping, facts, health, run,
// and copy (audit: control/audit.h). Each builds its operation from the
// command's options and reads every host's replies into one HostResult.
// Certificate renewal, which takes two calls per host, is control/renew.h.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "common/defaults.h"
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
  std::string cwd;                // "" : the agent's state directory
  size_t max_output = 1 << 20;    // bytes of stdout and of stderr kept per host
  // Per host; the agent stops the command a little before it.
  std::chrono::milliseconds timeout = kDefaultCommandTimeout;
};
// Errors name the flag: "--env expects KEY=VALUE, got 'X'".
Result<Task> ExecTask(const CommandSpec& spec);

// Per-command deadline budget: the agent kills the command a little before
// the CLI gives up on the host, so a slow command ends as "timeout", not
// "unreachable".
uint32_t AgentTimeoutMs(std::chrono::milliseconds host_timeout);

// `herd copy`: a local file to a path on every host.
struct CopySource {
  std::shared_ptr<const std::string> content;
  std::string sha256;
  uint32_t mode = 0644;
};
// Reads a local file for `herd copy`; the mode defaults to the file's own.
Result<CopySource> ReadCopySource(const std::string& path);
// `dest_path` must be absolute; `mode` is octal text ("0644"; "" keeps the
// source's). Errors name the argument or flag.
Result<Task> CopyTask(const std::string& src_path, const std::string& dest_path,
                      const std::string& mode, std::chrono::milliseconds timeout);

}  // namespace herd::control

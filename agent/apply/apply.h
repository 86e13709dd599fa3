// Apply: one host's part of a fleet spec made true on this device
// (docs/provisioning.md): labels the agent keeps, then directories, files
// and guarded commands, each compared with the device first and changed
// only when it differs. With `check`, nothing is changed at all; guards
// (creates, unless, onlyif) still run, as they are checks. After a failed
// item, the host's later items are skipped. gRPC-free: the RPC handler
// (agent/apply_call.cc) gives it the device's accounts, its command runner
// and its label store. Not thread-safe: one Apply at a time per device.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <string>

#include "agent/apply/label_store.h"
#include "agent/exec/exec_runner.h"
#include "agent/security/account.h"
#include "common/status.h"
#include "herd/v1/agent.pb.h"

namespace herd::agent {

// A command run to its end: exit code (-1: it did not run or was killed),
// its output's end.
struct CommandRun {
  int exit_code = -1;
  std::string output;  // the last KiB of stdout and stderr, for a failure's detail
  std::string error;   // it could not start, or timed out
};

struct ApplyEnv {
  // The account an item acts as (exec.run_as, or the agent's when it asks
  // for root), or why the device refuses it.
  std::function<Result<const Account*>(bool root)> account;
  std::function<CommandRun(const ExecSpec&)> run;
  LabelStore* labels = nullptr;
  const std::map<std::string, std::string>* owner_labels = nullptr;  // agent config's
  std::map<std::string, std::string> facts;                          // {{ facts.K }}
  std::chrono::milliseconds command_timeout{60'000};
};

// Checks `req` (sizes, paths, names, modes) before anything is done: an
// invalid request is refused whole (kInvalidArgument naming the item).
Status CheckApplyRequest(const v1::ApplyRequest& req);

// Does `req` (already checked) and fills `reply`: one item per label,
// directory, file and command, in order.
void RunApply(const v1::ApplyRequest& req, ApplyEnv& env, v1::ApplyReply* reply);

// The facts {{ facts.K }} sees: hostname, os, kernel, arch, cpus,
// memory_bytes, agent_version.
std::map<std::string, std::string> TemplateFacts(const std::string& state_dir);

}  // namespace herd::agent

// ExecRunner: runs commands for Exec. Each command runs argv directly (or
// /bin/sh -c when a shell line is given) in its own process group (started
// by a ProcessLauncher), with a
// timeout (SIGTERM, then SIGKILL after a grace period), a per-stream output cap
// (excess is drained and dropped), extra environment and a working directory.
//
// Output is flow-controlled: when `on_output` says the receiver holds enough
// (a client that stopped reading), the pipes are left unread until Resume,
// so the command blocks on a full pipe and memory per command stays bounded;
// timeouts and cancellation still act meanwhile.
//
// Threads: Start() may be called from any thread. Each running command has
// one worker thread that owns its pipes and child; `on_output` and then
// `on_done` (exactly once) are called from that worker. gRPC-free.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "agent/exec/guardian.h"
#include "agent/exec/process_launcher.h"
#include "common/defaults.h"
#include "common/status.h"

namespace herd::agent {

struct ExecSpec {
  std::vector<std::string> argv;
  std::string shell;  // non-empty: /bin/sh -c shell
  std::map<std::string, std::string> env;
  std::string cwd;
  const Account* account = nullptr;  // run as (outlives the command); null: the agent's
  std::string stdin_data;
  std::chrono::milliseconds timeout = kDefaultCommandTimeout;
  std::chrono::milliseconds kill_grace{2'000};
  uint64_t max_output_bytes = 1 << 20;
};

struct ExecOutcome {
  int exit_code = -1;
  int signal = 0;
  bool timed_out = false;
  bool truncated = false;
  std::chrono::milliseconds duration{0};
  std::string error;  // could not start: "command not found: foo"
};

class ExecRunner {
 public:
  // Returns false when the receiver holds enough: the command's pipes are
  // not read again (so it blocks on a full pipe) until Resume.
  using OutputFn = std::function<bool(bool is_stderr, std::string data)>;
  using DoneFn = std::function<void(ExecOutcome)>;

  // `guardian` (optional) is told of every command's process group, so that
  // the commands end if herdd dies.
  explicit ExecRunner(int max_concurrent, ProcessLauncher& launcher = ProcessLauncher::Real(),
                      Guardian* guardian = nullptr)
      : max_concurrent_(max_concurrent), launcher_(launcher), guardian_(guardian) {}
  ~ExecRunner();  // KillAll()

  // Returns an id for Cancel(), or an error when max_concurrent commands run.
  // A command that cannot start still completes through on_done with `error`.
  // `on_admitted`, if given, is called on the caller's thread once the command
  // is accepted and before anything of it runs (or on_output/on_done fire).
  Result<uint64_t> Start(ExecSpec spec, OutputFn on_output, DoneFn on_done,
                         const std::function<void()>& on_admitted = nullptr);
  // Kills the command's process group (TERM, KILL after its grace).
  void Cancel(uint64_t id);
  // Reads the command's output again after on_output returned false.
  void Resume(uint64_t id);
  // Kills every running command and waits for all workers to finish.
  void KillAll();
  int running() const;

 private:
  struct Job;
  void Work(std::shared_ptr<Job> job, ExecSpec spec, OutputFn on_output, DoneFn on_done);

  const int max_concurrent_;
  ProcessLauncher& launcher_;
  Guardian* const guardian_;
  mutable std::mutex mu_;  // guards jobs_, next_id_, stopping_
  std::condition_variable idle_;
  std::map<uint64_t, std::shared_ptr<Job>> jobs_;
  uint64_t next_id_ = 1;
  bool stopping_ = false;
};

}  // namespace herd::agent

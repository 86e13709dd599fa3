// Supervisor: runs the apps of this device in their sandboxes and keeps them
// running (docs/apps.md, "Running apps").
//
// An app's process is bwrap (agent/apps/sandbox.h) with the app as pid 1 of
// its namespace. Its stdout and stderr go to <apps>/<name>/run/output.log
// (rotated by size), bwrap writes the app's pid and then its exit code to
// run/status.json, and its listening sockets are made here and handed over.
// Nothing of the app hangs on herdd: when herdd is restarted or killed, the
// apps go on, and the next herdd takes them over: the database holds each
// process's pid and start time, a process with both is the app's, and its
// end is seen through a pidfd, its exit code in the status file.
//
// One thread ("herdd-apps") waits on the apps' pidfds and timers: it
// restarts apps that ended (RestartPolicy), probes running ones (liveness,
// every interval_healthy; startup probes every interval_starting until
// healthy) and rotates logs. An activation holds its app (Hold): then only
// the activation starts, stops and probes it.
//
// Thread-safe: every method may be called from any thread.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "agent/apps/app_db.h"
#include "agent/apps/app_store.h"
#include "agent/apps/cgroup.h"
#include "agent/apps/probe.h"
#include "agent/apps/restart_policy.h"
#include "agent/apps/sandbox.h"
#include "agent/exec/process_launcher.h"
#include "common/app/manifest.h"
#include "common/unique_fd.h"

namespace herd::agent {

struct AppHealth {
  std::string state = "waiting";  // okay | waiting | blocked | error
  std::string reason = "stopped";
};

// One app's process, as `herd apps` shows it.
struct AppProcessInfo {
  std::string name, version;
  uint64_t running = 0;  // the sequence running; 0: none
  int64_t pid = 0, child_pid = 0;
  int64_t started_unix = 0;
  int restarts = 0;
  bool crash_loop = false, held = false;
  AppHealth health;
  std::string last_exit;  // "exited-1", "signal-9", "" (never ended)
  uint64_t rss_bytes = 0;
  double cpu_seconds = 0;
  uint64_t health_failures = 0;  // probes failed, all reasons
  std::string limits;            // cgroup-v2, cgroup-v1 or rlimit
  std::map<std::string, uint64_t> failures_by_reason;
};

class Supervisor {
 public:
  Supervisor(const AppsSettings& settings, AppStore& store, AppDb& db, ProcessLauncher& launcher);
  ~Supervisor();  // Shutdown()

  // Takes over the processes the database names (those still alive with
  // the same start time), kills the strays of the others (processes of
  // their uids: started by a herdd killed before it recorded them), starts
  // the enabled apps that do not run, and starts the thread.
  // Apps in `held` are left to the recovery of their activations.
  void Open(const std::set<std::string>& held);
  // Ends the thread; the apps keep running. Idempotent.
  void Shutdown();

  // Starts version `seq` of `name` (supervised from then on unless held).
  // The app must not run. An error says why it could not start.
  Status Start(const std::string& name, uint64_t seq);
  // Stops `name`: SIGTERM to the app, SIGKILL to its namespace after its
  // stop_timeout; returns once it is gone. No error when it was not running.
  Status Stop(const std::string& name);
  // Whether the supervisor leaves the app to an activation (no restarts, no probes).
  void Hold(const std::string& name, bool held);
  // Stops supervising `name` (removed): it must be stopped first.
  void Forget(const std::string& name);
  // Enables restarts for an app just committed; its health becomes okay.
  void Committed(const std::string& name);

  // For an activation: "" while the app runs, else how it ended.
  std::string Ended(const std::string& name);
  // For an activation: the startup probe (or liveness once `startup` is
  // false) of the running app, now; ok without a probe.
  ProbeResult Probe(const std::string& name, bool startup);

  std::vector<AppProcessInfo> List();
  // How apps' memory and pids are limited here: cgroup-v2, cgroup-v1, rlimit.
  const std::string& limits_mode() const { return cgroups_.mode(); }
  std::optional<AppProcessInfo> Info(const std::string& name);
  std::string LogPath(const std::string& name) const;

 private:
  struct Proc {
    uint64_t seq = 0;  // the version running, or to run
    app::AppSpec spec;
    pid_t pid = 0, child = 0;  // bwrap, and the app (pid 1 of its namespace)
    int64_t pid_start = 0;
    bool ours = false;  // herdd's child (reaped with waitpid), not one taken over
    UniqueFd pidfd;
    std::chrono::steady_clock::time_point started{}, next_probe{};
    std::optional<std::chrono::steady_clock::time_point> restart_at, kill_at;
    int64_t started_unix = 0;
    bool held = false, enabled = false, stopping = false;
    std::optional<RestartPolicy> policy;
    int failures = 0;  // probes failed in a row
    AppHealth health;
    std::string last_exit;
    uint64_t health_failures = 0;
    std::map<std::string, uint64_t> by_reason;
    std::string limits = "rlimit";  // how this run is limited
    std::string cgroup;             // its group's name, "" before the first start

    std::string run_dir(const std::string& apps, const std::string& name) const {
      return apps + "/" + name + "/run";
    }
  };
  Status StartLocked(const std::string& name, Proc& p, uint64_t seq);
  void KillStrays(const std::vector<AppRecord>& apps);
  // The sandbox of version `seq` of `name`, its folders opened into `fds`.
  Result<SandboxSpec> SandboxFor(const std::string& name, uint64_t seq, const app::AppSpec& spec,
                                 std::vector<UniqueFd>* fds);
  ProbeResult ExecProbe(const std::string& name, const app::Probe& probe,
                        std::chrono::milliseconds timeout);
  void Reap(const std::string& name, Proc& p);
  void OnEnded(const std::string& name, Proc& p);
  ProbeResult RunProbe(const std::string& name, const app::Probe& probe,
                       std::chrono::milliseconds timeout);
  void Loop();
  void Tick();
  void Wake();
  AppProcessInfo InfoLocked(const std::string& name, const Proc& p) const;

  const AppsSettings& settings_;
  AppStore& store_;
  AppDb& db_;
  ProcessLauncher& launcher_;
  AppCgroups cgroups_;
  std::mutex mu_;
  std::map<std::string, std::unique_ptr<Proc>> procs_;
  UniqueFd wake_;  // eventfd
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace herd::agent

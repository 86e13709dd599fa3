// Activator: moves an app from one installed version to another, and back
// when the new one does not become healthy (docs/apps.md, "Activation").
//
// Every step is recorded in AppDb before it is taken:
//
//   verified    the version is installed, the device's policy and the data
//               format allow it (refused here: nothing has changed yet)
//   snapshot    the data folder is snapshotted (reflink, copy, or none
//               with --no-snapshot)
//   stop-old    the running version is stopped
//   start-new   the new version is started in its sandbox
//   probe       its probes must pass and then stay healthy for
//               healthy_before_commit, within startup_deadline
//   commit      one transaction: the app's current version, its data
//               format and the activation's outcome
//
// Any failure reverts: stop the new version, restore the snapshot, start
// the old one and probe it ("rolled-back", with the reason), or, if that
// fails too, "failed" with both versions and the snapshot kept. A herdd
// killed at any step finds the activation unfinished when it starts again
// and reverts it the same way (Open), so every app ends at its old or its
// new version, running, with its data.
//
// One activation (or rollback, or removal) per app at a time; a second is
// refused naming the first. Each runs on the thread of the call that asked
// for it (Spawn); Shutdown interrupts their waits.
#pragma once

#include <atomic>
#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "agent/apps/app_db.h"
#include "agent/apps/app_store.h"
#include "agent/apps/supervisor.h"

namespace herd::agent {

struct ActivationRequest {
  std::string name;
  uint64_t sequence = 0;      // activate: the version; 0: by `version`
  std::string version;        // activate: the version as people name it
  bool no_snapshot = false;   // go on without a data snapshot
  bool rollback = false;      // to the previous version
  bool restore_data = false;  // rollback: the data from before the last activation
  std::string who;            // the caller, for the logs
  std::string rollout_id;     // the rollout it is a step of ("" for none)
};

struct ActivationOutcome {
  ActivationRecord record;
  std::string from_version, to_version;
  int64_t duration_ms = 0;
  // Where the time went (ms): the snapshot, stopping the old version,
  // starting the new one's sandbox (until its pid is known), and from then
  // to its first healthy probe. 0 for steps not taken.
  int64_t snapshot_ms = 0, stop_ms = 0, start_ms = 0, first_healthy_ms = 0;
};

class Activator {
 public:
  static constexpr int kMaxThreads = 8;
  // `observe` is told of every ended activation (metrics).
  Activator(const AppsSettings& settings, AppStore& store, AppDb& db, Supervisor& supervisor,
            std::function<void(const ActivationOutcome&)> observe = nullptr);
  ~Activator();  // Shutdown()

  // The apps whose activation a killed herdd left unfinished.
  std::set<std::string> Unfinished();
  // Reverts those activations, on a thread of its own.
  void Recover();
  // Interrupts waits and joins every thread. Unfinished activations stay
  // recorded and are reverted at the next start.
  void Shutdown();

  // Runs `fn` on a thread of its own; false when kMaxThreads run already
  // or the activator is stopping.
  bool Spawn(std::function<void()> fn);
  // Shutdown has begun: long work on a spawned thread should end.
  bool stopping() const { return stop_; }

  // Activates or rolls back (blocking). Refusals before anything changed
  // are errors (kNotFound, kFailedPrecondition: another activation, the
  // data format; kPermissionDenied: the device's policy); a reverted or
  // failed activation is an outcome, not an error.
  Result<ActivationOutcome> Activate(const ActivationRequest& req);
  // Stops the app and removes its versions (its data too when `purge`).
  Status Remove(const std::string& name, bool purge, const std::string& who);

 private:
  // Takes the app for one activation; an error naming the holder.
  Status Take(const std::string& name, const std::string& what);
  void Release(const std::string& name);
  // "" once the app is healthy for long enough, else why not.
  // `first_healthy` (when given) is set to the time of the first healthy probe.
  std::string WaitHealthy(const std::string& name, const app::Probes& probes, bool confirm_only,
                          std::chrono::steady_clock::time_point* first_healthy = nullptr);
  void Revert(ActivationRecord& a, const std::string& reason);
  std::string SnapshotDir(const std::string& name, int64_t id) const;
  void Sleep(std::chrono::milliseconds d);

  const AppsSettings& settings_;
  AppStore& store_;
  AppDb& db_;
  Supervisor& sup_;
  std::function<void(const ActivationOutcome&)> observe_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::string, std::string> holders_;  // app -> what holds it
  std::vector<std::thread> threads_;
  std::set<std::thread::id> finished_;  // threads_ whose work is done (joined at the next Spawn)
  int running_ = 0;
  std::atomic<bool> stop_{false};
};

}  // namespace herd::agent

// herd rollout: a signed bundle across the fleet in waves, a canary first,
// then batches. Each wave is installed and activated (health-gated on every
// device, which reverts by itself) before the next starts; once failures
// spend the budget the rollout halts, touches no other host and rolls back
// every host it updated (docs/rollouts.md). What happens is told as events
// (rollout_started, wave_started, host_updated, host_failed, host_reverted,
// halted, finished, ...), for people as lines and for machines as JSON.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "common/app/manifest.h"
#include "common/defaults.h"
#include "control/executor.h"
#include "control/host_result.h"
#include "control/tasks.h"

namespace herd::control {

struct RolloutSpec {
  std::string bundle;  // the .herd file, or NAME@VERSION with `catalog`
  // Each host installs NAME@VERSION from its own catalogues
  // (CatalogInstallTask) instead of receiving the bundle.
  bool catalog = false;
  std::string channel;  // with `catalog`: "" is each host's default
  size_t canary = 1;
  std::string batch = "25%";  // hosts per batch: "N", or "P%" of all hosts (at least 1)
  std::optional<size_t> max_failures;
  std::optional<double> max_failure_ratio;  // of all hosts
  // How long each host's activation may take to commit (its startup and
  // healthy time included); longer counts as a failure.
  std::chrono::milliseconds health_timeout{std::chrono::minutes(10)};
  // Soak between waves: the updated hosts must still be healthy after it.
  std::chrono::milliseconds pause{0};
  std::chrono::milliseconds timeout = kDefaultCommandTimeout;  // each host's install
  // Recorded with every activation the rollout makes, on each device; ""
  // makes one ("r" + time + random).
  std::string id;
  std::string target;  // as the user gave it: named in how to resume
};

// `herd rollout status NAME TARGET`: where `name` stands on each host, from
// the host alone: its version, health, and last activation (kind, versions,
// outcome or the step it is at, rollout id). Hosts in the same state read
// the same line, so --fold groups them.
Task RolloutStatusTask(const std::string& name, std::chrono::milliseconds timeout);

// `herd rollout resume ID`: what rollout ID was rolling out, read from the
// hosts' `herd apps` results alone (their last activations): the app and
// version, and how many hosts run it already. A host whose last activation
// is a rollback by ID (the rollout halted) points at the version it left.
// kNotFound when no host's last activation carries ID; kFailedPrecondition
// when they disagree on the app or version.
struct RolloutPoint {
  std::string app, version;
  uint64_t sequence = 0;
  size_t carrying = 0;    // hosts whose last activation carries ID
  size_t on_version = 0;  // hosts whose current version is it
};
Result<RolloutPoint> FindRollout(const std::vector<HostResult>& listed, const std::string& id);

// Host indices per wave: the first `canary` hosts, then batches. Errors name
// the flag.
Result<std::vector<std::vector<size_t>>> PlanWaves(size_t hosts, size_t canary,
                                                   const std::string& batch);

// Spent once failures exceed max_failures or max_ratio × hosts; with
// neither set, the first failure spends it.
struct FailureBudget {
  std::optional<size_t> max_failures;
  std::optional<double> max_ratio;
  size_t hosts = 0;
  bool Spent(size_t failures) const;
  std::string Describe() const;  // "2 failures", "10% of 40 hosts (4)", "no failure"
};

using EventSink = std::function<void(const nlohmann::json& event)>;

// The app's entry in a host's `herd apps` (List) result; null when it has none.
nlohmann::json AppOn(const HostResult& listed, const std::string& name);

// One event as a line for people.
std::string EventLine(const nlohmann::json& event);

// The progress bar a terminal shows under the event lines: fed every
// event, it draws "[#####.....] wave 2/5  26/100 done  0 failed  1 not
// reached  0 refused" (`width` cells of bar).
class RolloutProgress {
 public:
  void Add(const nlohmann::json& event);
  std::string Line(size_t width = 20) const;
  bool finished() const { return finished_; }

 private:
  size_t hosts_ = 0, waves_ = 0, wave_ = 0;
  size_t done_ = 0, failed_ = 0, not_reached_ = 0, refused_ = 0;
  bool finished_ = false;
};

// What each host would change, as "plan" events (a List of every host).
// Returns the hosts' answers (unreachable ones included).
std::vector<HostResult> PlanRollout(Executor& executor, const std::vector<const Host*>& hosts,
                                    const std::vector<std::vector<size_t>>& waves,
                                    const app::AppSpec& app, std::chrono::milliseconds timeout,
                                    const EventSink& emit);

// NAME@VERSION as the hosts' catalogues have it: asked of the hosts in
// order (index only, nothing installed) until one answers, at most 3.
// `app` gets its name, version and sequence; `bundle` its digest and size.
Status ResolveFromCatalog(Executor& executor, const std::vector<const Host*>& hosts,
                          const RolloutSpec& spec, app::AppSpec* app, CopySource* bundle);

// Runs the rollout of `bundle` (whose manifest is `app`) on `hosts`; `stop`
// is looked at between waves and during a soak, never inside a wave, so
// no host is left mid-activation. Returns each host's account: updated
// (ok), failed, refused by its device (rejected), not reached (unreachable),
// rolled back after a halt (failed, error_code "rolled-back-by-rollout"),
// not touched after a halt (rejected, "halted") or an interrupt (skipped).
std::vector<HostResult> RunRollout(Executor& executor, const std::vector<const Host*>& hosts,
                                   const RolloutSpec& spec, const CopySource& bundle,
                                   const app::AppSpec& app, const EventSink& emit,
                                   const std::atomic<bool>& stop);

}  // namespace herd::control

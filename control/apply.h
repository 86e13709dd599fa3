// herd apply, herd drift and the apply step of herd provision
// (docs/provisioning.md): each host's plan (control/fleet_spec.h) sent to
// its agent in one Apply call, which compares and changes labels,
// directories, files and guarded commands on the device; then the app
// entries, rolled out with the rollout engine (control/rollout.h) to the
// hosts whose version differs. CLI thread only.
#pragma once

#include <atomic>
#include <chrono>
#include <map>
#include <string>
#include <vector>

#include "control/executor.h"
#include "control/fleet_spec.h"
#include "control/host_result.h"
#include "control/reporter.h"
#include "control/rollout.h"
#include "control/task.h"
#include "herd/v1/agent.pb.h"

namespace herd::control {

struct ApplyOptions {
  bool check = false;                         // change nothing; say what would change
  bool diff = false;                          // files' unified diffs (never of secret ones)
  std::chrono::milliseconds timeout{60'000};  // each host's Apply call
  // App entries: how long each host's activation may take.
  std::chrono::milliseconds health_timeout{std::chrono::minutes(10)};
};

// The Apply request of `host`'s plan (its apps aside).
v1::ApplyRequest ApplyRequestFor(const HostPlan& plan, const Host& host, const ApplyOptions& o);

// The Apply call to each host, each with its own request (by host name).
// A host's result: ok unless an item failed (a failed host, naming the
// items); its data {items, ok, changed, failed, skipped, labels}; its text
// lines, one per item that is not ok (with --diff, the diff under it).
Task ApplyTask(const std::map<std::string, v1::ApplyRequest>& requests, const ApplyOptions& o);

// One item's end, as printed: "changed file /etc/motd: content (3 -> 5 bytes)".
std::string ItemLine(const nlohmann::json& item);

// The app entries of `plans` on `hosts` (whose Apply results are
// `results`, in the same order): each host's version from `herd apps`,
// then, unless o.check, one rollout per app, version and settings of the
// hosts that differ (hosts that failed already are left out). Items are
// appended to each result's data.items and counts; a failed rollout fails
// its hosts. `emit` gets the rollouts' events.
void ApplyApps(Executor& executor, const std::vector<const Host*>& hosts,
               const std::map<std::string, HostPlan>& plans, const ApplyOptions& o,
               const EventSink& emit, const std::atomic<bool>& stop,
               std::vector<HostResult>* results);

// Items that are not ok in `results` (check: would change; failed, skipped).
size_t PendingItems(const std::vector<HostResult>& results);

}  // namespace herd::control

// Activator's way back: reverting an activation, and removing an app
// (activation.h).
#include <spdlog/spdlog.h>

#include "agent/apps/activation.h"
#include "agent/apps/app_process.h"
#include "agent/apps/snapshot.h"

namespace herd::agent {
namespace {

// Steps after which the new version may have written to the data.
bool NewMayHaveRun(const std::string& step) {
  return step == "start-new" || step == "probe" || step == "commit" || step.rfind("revert", 0) == 0;
}

}  // namespace

void Activator::Revert(ActivationRecord& a, const std::string& reason) {
  spdlog::warn("apps: {} #{} of {} reverts ({})", a.kind, a.id, a.app, reason);
  sup_.Hold(a.app, true);
  const bool restore = NewMayHaveRun(a.step) && (a.snapshot == "reflink" || a.snapshot == "copy");
  (void)db_.SetStep(a.id, a.step = "revert-stop-new");
  CrashPoint("revert:stop-new");
  std::string failed;
  if (Status s = sup_.Stop(a.app); !s.ok()) failed = "stop-new-failed";
  if (failed.empty() && restore) {
    (void)db_.SetStep(a.id, a.step = "revert-restore");
    CrashPoint("revert:restore");
    auto data = store_.DataDir(a.app);
    if (!data.ok() || !RestoreTree(SnapshotDir(a.app, a.id), *data).ok()) failed = "restore-failed";
  }
  AppRecord app = db_.App(a.app).value_or(AppRecord{});
  app.name = a.app;
  if (failed.empty() && a.from != 0) {
    (void)db_.SetStep(a.id, a.step = "revert-start-old");
    CrashPoint("revert:start-old");
    auto old = InstalledSpec(store_.dir(), a.app, a.from);
    const Status started = old.ok() ? sup_.Start(a.app, a.from) : old.status();
    if (!started.ok()) {
      spdlog::error("apps: {} #{} of {}: sequence {} does not start: {}", a.kind, a.id, a.app,
                    a.from, started.message());
      failed = "start-old-failed";
    } else if (std::string why = WaitHealthy(a.app, old->probes, true); !why.empty()) {
      failed = why == "interrupted" ? "" : "old-unhealthy-" + why;
      if (why == "interrupted") return;  // the next start goes on
    }
  }
  a.outcome = failed.empty() ? "rolled-back" : "failed";
  a.reason = failed.empty() ? reason : reason + "," + failed;
  app.enabled = a.from != 0;
  if (Status s = db_.End(a, app); !s.ok()) spdlog::error("apps: {}", s.message());
  if (failed.empty()) {
    RemoveTree(SnapshotDir(a.app, a.id));
    if (a.from != 0) sup_.Committed(a.app);
    sup_.Hold(a.app, false);
    spdlog::warn("apps: {} #{} of {} rolled back ({}): sequence {} runs again", a.kind, a.id, a.app,
                 reason, a.from);
  } else {
    // Both versions and the snapshot stay; the supervisor keeps trying the old one.
    sup_.Hold(a.app, false);
    spdlog::error(
        "apps: {} #{} of {} FAILED ({}): the old version did not come back; both versions and "
        "the data snapshot {} are kept",
        a.kind, a.id, a.app, a.reason, SnapshotDir(a.app, a.id));
  }
}

Status Activator::Remove(const std::string& name, bool purge, const std::string& who) {
  if (Status s = Take(name, "a removal (by " + who + ")"); !s.ok()) return s;
  sup_.Hold(name, true);
  Status s = sup_.Stop(name);
  if (s.ok()) s = db_.DeleteApp(name);
  if (s.ok()) s = store_.RemoveApp(name, purge);
  if (s.ok())
    sup_.Forget(name);
  else
    sup_.Hold(name, false);
  Release(name);
  return s;
}

}  // namespace herd::agent

#include "agent/apps/activation.h"

#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include <algorithm>
#include <filesystem>

#include "agent/apps/app_process.h"
#include "agent/apps/snapshot.h"
#include "agent/startup_pages.h"

namespace herd::agent {
namespace {

using SteadyClock = std::chrono::steady_clock;
using ms = std::chrono::milliseconds;

Status Busy(const std::string& name, const std::string& holder) {
  return Status(StatusCode::kFailedPrecondition,
                "app " + name + " is busy: " + holder + " is in progress");
}

int64_t Ms(SteadyClock::time_point since) {
  return std::chrono::duration_cast<ms>(SteadyClock::now() - since).count();
}

bool Contains(const std::vector<uint32_t>& v, uint32_t x) {
  return std::find(v.begin(), v.end(), x) != v.end();
}

// Whether `spec` can run on data in `format` (0: no data yet).
bool TakesFormat(const app::AppSpec& spec, uint32_t format) {
  return format == 0 || spec.data_format == format || Contains(spec.migrates_from, format);
}

}  // namespace

Activator::Activator(const AppsSettings& settings, AppStore& store, AppDb& db,
                     Supervisor& supervisor, std::function<void(const ActivationOutcome&)> observe)
    : settings_(settings), store_(store), db_(db), sup_(supervisor), observe_(std::move(observe)) {
  // The current and previous versions, and those being activated, stay installed.
  store_.SetProtected([this](const std::string& name) {
    std::set<uint64_t> keep;
    if (auto r = db_.App(name)) keep = {r->current, r->previous, r->running};
    if (auto a = db_.Last(name); a && a->outcome.empty()) keep.insert({a->from, a->to});
    keep.erase(0);
    return keep;
  });
}

Activator::~Activator() { Shutdown(); }

std::set<std::string> Activator::Unfinished() {
  std::set<std::string> out;
  for (const auto& a : db_.Unfinished()) out.insert(a.app);
  return out;
}

void Activator::Recover() {
  auto unfinished = db_.Unfinished();
  if (unfinished.empty()) return;
  {
    std::lock_guard<std::mutex> l(mu_);
    for (const auto& a : unfinished) {
      holders_[a.app] = "the recovery of activation " + std::to_string(a.id);
    }
  }
  Spawn([this, unfinished]() mutable {
    for (auto& a : unfinished) {
      spdlog::warn("apps: activation {} of {} ({} -> {}) was cut short at step {}: reverting", a.id,
                   a.app, a.from, a.to, a.step);
      Revert(a, "interrupted");
      Release(a.app);
    }
  });
}

void Activator::Shutdown() {
  {
    std::lock_guard<std::mutex> l(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  std::vector<std::thread> threads;
  {
    std::lock_guard<std::mutex> l(mu_);
    threads.swap(threads_);
  }
  for (auto& t : threads) t.join();
}

bool Activator::Spawn(std::function<void()> fn) {
  std::vector<std::thread> done;
  {
    std::lock_guard<std::mutex> l(mu_);
    if (stop_ || running_ >= kMaxThreads) return false;
    // Threads that ended are joined here, so that none lingers.
    for (auto it = threads_.begin(); it != threads_.end();) {
      if (finished_.count(it->get_id())) {
        finished_.erase(it->get_id());
        done.push_back(std::move(*it));
        it = threads_.erase(it);
      } else {
        ++it;
      }
    }
    ++running_;
    threads_.emplace_back([this, fn = std::move(fn)] {
      fn();
      bool last = false;
      {
        std::lock_guard<std::mutex> l(mu_);
        last = --running_ == 0;
        finished_.insert(std::this_thread::get_id());
      }
      if (last) ReleaseAfterWork("an activation");
    });
  }
  for (auto& t : done) t.join();
  return true;
}

void Activator::Sleep(ms d) {
  std::unique_lock<std::mutex> l(mu_);
  cv_.wait_for(l, d, [this] { return stop_.load(); });
}

Status Activator::Take(const std::string& name, const std::string& what) {
  std::lock_guard<std::mutex> l(mu_);
  if (auto it = holders_.find(name); it != holders_.end()) return Busy(name, it->second);
  holders_[name] = what;
  return Status::Ok();
}

void Activator::Release(const std::string& name) {
  std::lock_guard<std::mutex> l(mu_);
  holders_.erase(name);
}

std::string Activator::SnapshotDir(const std::string& name, int64_t id) const {
  return store_.dir() + "/" + name + "/snapshots/" + std::to_string(id);
}

std::string Activator::WaitHealthy(const std::string& name, const app::Probes& probes,
                                   bool confirm_only, SteadyClock::time_point* first_healthy) {
  const auto start = SteadyClock::now();
  bool healthy = false;
  SteadyClock::time_point healthy_since{};
  int failures = 0;
  std::string last = "starting";
  while (!stop_) {
    if (std::string ended = sup_.Ended(name); !ended.empty()) return ended;
    const auto now = SteadyClock::now();
    if (!healthy && now - start > probes.startup_deadline) return "startup-deadline";
    const ProbeResult r = sup_.Probe(name, !healthy);
    if (r.ok) {
      failures = 0;
      if (!healthy) healthy_since = now;
      if (first_healthy && *first_healthy == SteadyClock::time_point{}) {
        *first_healthy = SteadyClock::now();  // the probe's answer, not its start
      }
      healthy = true;
      if (confirm_only || now - healthy_since >= probes.healthy_before_commit) return "";
    } else {
      last = r.reason;
      healthy = false;
      if (now - start >= probes.start_grace && ++failures >= probes.failure_threshold) {
        return r.reason;
      }
    }
    Sleep(probes.interval_starting);
  }
  return "interrupted";
}

Result<ActivationOutcome> Activator::Activate(const ActivationRequest& req) {
  const auto t0 = SteadyClock::now();
  {
    // Busy first: whatever else is wrong with the request, it waits its turn.
    std::lock_guard<std::mutex> l(mu_);
    if (auto it = holders_.find(req.name); it != holders_.end()) return Busy(req.name, it->second);
  }
  AppRecord app = db_.App(req.name).value_or(AppRecord{});
  app.name = req.name;
  uint64_t to = req.sequence;
  if (req.rollback) {
    if (app.previous == 0) {
      return Status(StatusCode::kFailedPrecondition,
                    "app " + req.name + " has no previous version to roll back to");
    }
    to = app.previous;
  } else if (to == 0) {
    for (const auto& v : store_.List()) {
      if (v.name == req.name && v.version == req.version) to = v.sequence;
    }
    if (to == 0) {
      return Status::NotFound("app " + req.name + " has no installed version " + req.version +
                              " (herd apps TARGET lists them)");
    }
  }
  auto spec = InstalledSpec(store_.dir(), req.name, to);
  if (!spec.ok()) return spec.status();
  // The device's policy may have narrowed since the install.
  if (spec->network == "outbound" && !settings_.allow_outbound) {
    return Status(StatusCode::kPermissionDenied,
                  "app " + req.name +
                      " asks for outbound network, which this device's "
                      "apps.allow_outbound does not grant");
  }
  if (spec->memory_bytes > settings_.max_memory || spec->pids > settings_.max_pids) {
    return Status(StatusCode::kPermissionDenied,
                  "app " + req.name +
                      " asks for more memory or pids than this device's "
                      "apps.max_memory / apps.max_pids");
  }
  ActivationRecord snapshot_of_current;
  if (req.rollback && req.restore_data) {
    auto c = db_.CommittedTo(req.name, app.current);
    if (!c || (c->snapshot != "reflink" && c->snapshot != "copy")) {
      return Status(StatusCode::kFailedPrecondition,
                    "there is no snapshot of " + req.name +
                        "'s data from before its current version: roll back without "
                        "--restore-data");
    }
    snapshot_of_current = *c;
  } else if (!TakesFormat(*spec, app.data_format)) {
    return Status(StatusCode::kFailedPrecondition,
                  "app " + req.name + " version " + spec->version +
                      " cannot take over data format " + std::to_string(app.data_format) +
                      " (it migrates from " +
                      (spec->migrates_from.empty() ? std::string("none")
                                                   : std::to_string(spec->migrates_from.front())) +
                      ")" + (req.rollback ? ": roll back with --restore-data" : ""));
  }
  if (to == app.current && sup_.Ended(req.name).empty()) {
    ActivationOutcome same;
    same.record.app = req.name;
    same.record.from = same.record.to = to;
    same.record.outcome = "committed";
    same.record.reason = "already-active";
    same.from_version = same.to_version = spec->version;
    return same;
  }
  const std::string kind = req.rollback ? "rollback" : "activate";
  if (Status s =
          Take(req.name, (req.rollback ? "a rollback" : "an activation of " + spec->version) +
                             " (by " + req.who +
                             (req.rollout_id.empty() ? "" : ", rollout " + req.rollout_id) + ")");
      !s.ok()) {
    return s;
  }
  ActivationOutcome out;
  ActivationRecord& a = out.record;
  a.app = req.name;
  a.kind = kind;
  a.from = app.current;
  a.to = to;
  a.step = "verified";
  a.restore_data = req.restore_data;
  a.rollout = req.rollout_id;
  if (Status s = db_.Begin(&a); !s.ok()) {
    Release(req.name);
    return s;
  }
  if (app.current) {
    if (auto old = InstalledSpec(store_.dir(), req.name, app.current); old.ok()) {
      out.from_version = old->version;
    }
  }
  out.to_version = spec->version;
  spdlog::info("apps: {} #{} of {}: sequence {} -> {} (by {})", kind, a.id, req.name, a.from, a.to,
               req.who);
  CrashPoint("activate:verified");
  sup_.Hold(req.name, true);
  std::string reason;
  // snapshot
  (void)db_.SetStep(a.id, a.step = "snapshot");
  CrashPoint("activate:snapshot");
  auto data = store_.DataDir(req.name);
  if (!data.ok()) {
    reason = "data-folder";
  } else if (req.no_snapshot) {
    a.snapshot = "none";
  } else {
    ::mkdir((store_.dir() + "/" + req.name + "/snapshots").c_str(), 0700);
    const auto t = SteadyClock::now();
    auto kind_used = SnapshotTree(*data, SnapshotDir(req.name, a.id), settings_.max_snapshot_copy);
    out.snapshot_ms = Ms(t);
    if (!kind_used.ok()) {
      (void)db_.SetStep(a.id, a.step = "refused");
      a.outcome = "rolled-back";
      a.reason = "no-snapshot";
      (void)db_.End(a, *db_.App(req.name));
      sup_.Hold(req.name, false);
      Release(req.name);
      return kind_used.status();
    }
    a.snapshot = *kind_used;
  }
  (void)db_.SetSnapshot(a.id, a.snapshot);
  // stop-old
  if (reason.empty()) {
    (void)db_.SetStep(a.id, a.step = "stop-old");
    CrashPoint("activate:stop-old");
    const auto t = SteadyClock::now();
    if (Status s = sup_.Stop(req.name); !s.ok()) reason = "stop-failed";
    out.stop_ms = Ms(t);
  }
  if (reason.empty() && req.restore_data) {
    (void)db_.SetStep(a.id, a.step = "restore-data");
    const std::string from = SnapshotDir(req.name, snapshot_of_current.id);
    if (Status s = RestoreTree(from, *data); !s.ok()) reason = "restore-failed";
  }
  // start-new
  if (reason.empty()) {
    (void)db_.SetStep(a.id, a.step = "start-new");
    CrashPoint("activate:start-new");
    const auto t = SteadyClock::now();
    Status started = sup_.Start(req.name, to);
    out.start_ms = Ms(t);
    if (Status s = started; !s.ok()) {
      spdlog::warn("apps: {} {} did not start: {}", req.name, spec->version, s.message());
      reason = "start-failed";
    }
    CrashPoint("activate:started");
  }
  // probe
  if (reason.empty()) {
    (void)db_.SetStep(a.id, a.step = "probe");
    CrashPoint("activate:probe");
    const auto t = SteadyClock::now();
    SteadyClock::time_point first{};
    reason = WaitHealthy(req.name, spec->probes, false, &first);
    if (first != SteadyClock::time_point{}) {
      out.first_healthy_ms = std::chrono::duration_cast<ms>(first - t).count();
    }
    if (reason == "interrupted") {
      // herdd is stopping: the next start reverts it (recorded unfinished).
      return Status(StatusCode::kUnavailable, "herdd is stopping: activation " +
                                                  std::to_string(a.id) +
                                                  " is reverted when it starts again");
    }
  }
  if (reason.empty()) {
    (void)db_.SetStep(a.id, a.step = "commit");
    CrashPoint("activate:commit");
    AppRecord now = db_.App(req.name).value_or(app);
    now.previous = a.from != to ? a.from : app.previous;
    now.current = to;
    now.data_format = spec->data_format;
    now.enabled = true;
    a.outcome = "committed";
    a.reason = "healthy";
    if (Status s = db_.End(a, now); !s.ok()) {
      reason = "commit-failed";
    } else {
      CrashPoint("activate:committed");
      sup_.Committed(req.name);
      // The snapshot of this activation is the one a rollback may restore.
      std::error_code ec;
      for (const auto& e :
           std::filesystem::directory_iterator(store_.dir() + "/" + req.name + "/snapshots", ec)) {
        if (e.path().filename() != std::to_string(a.id)) RemoveTree(e.path().string());
      }
      spdlog::info("apps: {} #{} of {} committed: {} runs", kind, a.id, req.name, spec->version);
    }
  }
  if (!reason.empty()) Revert(a, reason);
  Release(req.name);
  out.duration_ms = std::chrono::duration_cast<ms>(SteadyClock::now() - t0).count();
  if (observe_) observe_(out);
  return out;
}

}  // namespace herd::agent

#include "control/rollout.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cmath>
#include <ctime>
#include <random>
#include <thread>

#include "herd/v1/app.pb.h"
#include "proto/rpc/agent_methods.h"

namespace herd::control {
namespace {

using nlohmann::json;
using ms = std::chrono::milliseconds;

std::string NewRolloutId() {
  const std::time_t now = std::time(nullptr);
  std::tm utc{};
  gmtime_r(&now, &utc);
  char stamp[32];
  std::strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", &utc);
  std::random_device rd;
  return fmt::format("r{}-{:04x}", stamp, rd() & 0xffff);
}

std::vector<const Host*> Pick(const std::vector<const Host*>& hosts,
                              const std::vector<size_t>& which) {
  std::vector<const Host*> out;
  out.reserve(which.size());
  for (size_t i : which) out.push_back(hosts[i]);
  return out;
}

// Waits `d`, or less when `stop` holds; true when it waited it all.
bool Soak(ms d, const std::atomic<bool>& stop) {
  const auto end = std::chrono::steady_clock::now() + d;
  while (!stop.load()) {
    const auto now = std::chrono::steady_clock::now();
    if (now >= end) return true;
    std::this_thread::sleep_for(std::min<std::chrono::steady_clock::duration>(end - now, ms(100)));
  }
  return false;
}

class Rollout {
 public:
  Rollout(Executor& executor, const std::vector<const Host*>& hosts, const RolloutSpec& spec,
          const CopySource& bundle, const app::AppSpec& app, const EventSink& emit,
          const std::atomic<bool>& stop)
      : id_(spec.id.empty() ? NewRolloutId() : spec.id),
        executor_(executor),
        hosts_(hosts),
        spec_(spec),
        bundle_(bundle),
        app_(app),
        emit_(emit),
        stop_(stop),
        account_(hosts.size()) {
    budget_ = {spec.max_failures, spec.max_failure_ratio, hosts.size()};
    for (size_t i = 0; i < hosts.size(); ++i) {
      account_[i].host = hosts[i]->name;
      account_[i].address = hosts[i]->address;
    }
  }

  std::vector<HostResult> Run(const std::vector<std::vector<size_t>>& waves) {
    std::vector<size_t> sizes;
    for (const auto& w : waves) sizes.push_back(w.size());
    json start = Event("rollout_started");
    start.update({{"rollout_id", id_},
                  {"app", app_.name},
                  {"version", app_.version},
                  {"sequence", app_.sequence},
                  {"bundle_sha256", bundle_.sha256},
                  {"hosts", hosts_.size()},
                  {"waves", sizes},
                  {"budget", budget_.Describe()}});
    emit_(start);
    std::string outcome = "completed";
    for (size_t w = 0; w < waves.size(); ++w) {
      if (stop_.load()) {
        outcome = "interrupted";
        break;
      }
      json ws = Event("wave_started");
      std::vector<std::string> names;
      for (size_t i : waves[w]) names.push_back(hosts_[i]->name);
      ws.update({{"wave", w + 1},
                 {"waves", waves.size()},
                 {"kind", w == 0 && spec_.canary > 0 ? "canary" : "batch"},
                 {"hosts", names}});
      emit_(ws);
      Wave(waves[w]);
      if (budget_.Spent(failures_)) {
        outcome = "halted";
        break;
      }
      if (spec_.pause.count() > 0 && w + 1 < waves.size()) {
        if (!Soak(spec_.pause, stop_)) {
          outcome = "interrupted";
          break;
        }
        CheckSoaked(waves[w]);
        if (budget_.Spent(failures_)) {
          outcome = "halted";
          break;
        }
      }
    }
    if (outcome == "halted") Halt();
    size_t counts[5] = {};  // updated, failed, not reached, refused, not touched
    for (auto& r : account_) {
      if (r.summary.empty()) {
        r.outcome = outcome == "interrupted" ? Outcome::kSkipped : Outcome::kRejected;
        r.error_code = outcome == "interrupted" ? "interrupted" : "halted";
        r.summary = r.message = fmt::format("not touched: the rollout {}", outcome);
      }
      const std::string& c = r.error_code;
      ++counts[r.outcome == Outcome::kOk             ? 0
               : c == "not_reached"                  ? 2
               : c == "refused_by_device"            ? 3
               : c == "halted" || c == "interrupted" ? 4
                                                     : 1];
    }
    json end = Event("finished");
    end.update({{"rollout_id", id_},
                {"outcome", outcome},
                {"updated", counts[0]},
                {"failed", counts[1]},
                {"not_reached", counts[2]},
                {"refused", counts[3]},
                {"not_touched", counts[4]},
                {"rolled_back", rolled_back_},
                {"duration_ms",
                 std::chrono::duration_cast<ms>(std::chrono::steady_clock::now() - t0_).count()}});
    if (outcome == "interrupted") {
      end["resume"] = fmt::format(
          "herd rollout resume {} {} --yes (with the same wave and budget flags), or the same "
          "herd rollout again: hosts on the version already are skipped",
          id_, spec_.target.empty() ? "TARGET" : spec_.target);
    }
    emit_(end);
    for (const auto& r : account_) {
      if (r.outcome == Outcome::kOk) continue;
      json h = Event("host_account");
      h.update({{"host", r.host}, {"error_code", r.error_code}, {"message", r.message}});
      emit_(h);
    }
    return account_;
  }

 private:
  // Every event says when it happened: milliseconds since the rollout began.
  json Event(const char* name) const {
    return {{"event", name},
            {"elapsed_ms",
             std::chrono::duration_cast<ms>(std::chrono::steady_clock::now() - t0_).count()}};
  }

  void HostEvent(const char* name, size_t i, json extra) {
    json e = Event(name);
    e["host"] = hosts_[i]->name;
    e.update(extra);
    emit_(e);
  }

  void Failed(size_t i, const HostResult& r, const std::string& code, const std::string& why) {
    ++failures_;
    account_[i] = r;
    account_[i].host = hosts_[i]->name;
    account_[i].address = hosts_[i]->address;
    if (account_[i].outcome == Outcome::kOk) account_[i].outcome = Outcome::kCommandFailed;
    account_[i].error_code = code;
    account_[i].message = account_[i].summary = why;
    HostEvent("host_failed", i,
              {{"reason", code},
               {"message", why},
               {"failures", failures_},
               {"budget", budget_.Describe()}});
  }

  // The owner's trust or policy said no: the device's say, not a failure.
  void Refused(size_t i, const HostResult& r) {
    account_[i] = r;
    account_[i].outcome = Outcome::kRejected;
    account_[i].error_code = "refused_by_device";
    account_[i].summary = "refused by the device: " + r.message;
    HostEvent("host_refused", i, {{"message", r.message}});
  }

  void Wave(const std::vector<size_t>& wave) {
    NullReporter quiet;
    std::vector<HostResult> installed;
    if (spec_.catalog) {
      CatalogInstallSpec cs;
      cs.name = app_.name;
      cs.version = app_.version;
      cs.channel = spec_.channel;
      cs.timeout = spec_.timeout;
      installed = RunTask(executor_, Pick(hosts_, wave), CatalogInstallTask(cs), quiet);
    } else {
      InstallSpec is;
      is.bundle = spec_.bundle;
      is.timeout = spec_.timeout;
      installed = InstallApp(executor_, Pick(hosts_, wave), is, bundle_, quiet);
    }
    std::vector<size_t> activate;
    for (size_t k = 0; k < wave.size(); ++k) {
      const size_t i = wave[k];
      const HostResult& r = installed[k];
      if (r.outcome == Outcome::kOk) {
        activate.push_back(i);
      } else if (IsUnreachable(r.outcome) && r.outcome != Outcome::kTimeout) {
        // Offline before it was touched: counted apart.
        account_[i] = r;
        account_[i].error_code = "not_reached";
        account_[i].summary = "not reached: " + r.message;
        HostEvent("host_not_reached", i, {{"message", r.message}});
      } else if (r.error_code == "permission_denied") {
        Refused(i, r);
      } else {
        Failed(i, r, "install_failed", "install failed: " + r.message);
      }
    }
    if (activate.empty()) return;
    ActivateSpec as;
    as.name = app_.name;
    as.version = app_.version;
    as.rollout_id = id_;
    as.timeout = spec_.health_timeout;
    const auto task = ActivateTask(as);
    const auto activated = RunTask(executor_, Pick(hosts_, activate), *task, quiet);
    for (size_t k = 0; k < activate.size(); ++k) {
      const size_t i = activate[k];
      const HostResult& r = activated[k];
      if (r.outcome == Outcome::kOk) {
        account_[i] = r;
        // One that ran the version already is not this rollout's to roll back.
        const bool ran_it = r.data.contains("activation") &&
                            r.data["activation"].value("reason", "") == "already-active";
        if (!ran_it) updated_.push_back(i);
        HostEvent("host_updated", i,
                  {{"from_version", r.data.value("from_version", "")},
                   {"to_version", r.data.value("to_version", "")},
                   {"duration_ms", r.data.value("duration_ms", 0)}});
      } else if (r.outcome == Outcome::kCommandFailed) {
        Failed(i, r, "reverted", "reverted itself: " + r.summary);
      } else if (r.error_code == "permission_denied") {
        Refused(i, r);  // the owner's policy narrowed since the install
      } else if (IsUnreachable(r.outcome)) {
        Failed(i, r, "unreachable",
               "became unreachable during its activation (health timeout " +
                   fmt::format("{} s", spec_.health_timeout.count() / 1000) + "): " + r.message);
      } else {
        Failed(i, r, "activate_failed", "activation refused: " + r.message);
      }
    }
  }

  // After a soak: every host this wave updated must still run the version,
  // healthy.
  void CheckSoaked(const std::vector<size_t>& wave) {
    std::vector<size_t> check;
    for (size_t i : wave) {
      if (std::find(updated_.begin(), updated_.end(), i) != updated_.end()) check.push_back(i);
    }
    if (check.empty()) return;
    NullReporter quiet;
    const auto listed = RunTask(executor_, Pick(hosts_, check), ListAppsTask(spec_.timeout), quiet);
    for (size_t k = 0; k < check.size(); ++k) {
      const json a = AppOn(listed[k], app_.name);
      std::string why;
      if (listed[k].outcome != Outcome::kOk) {
        why = "unreachable after the soak: " + listed[k].message;
      } else if (a.is_null() || a.value("current_sequence", uint64_t{0}) != app_.sequence) {
        why = "no longer on " + app_.version + " after the soak";
      } else if (a.value("health", "") == "error") {
        why = fmt::format("unhealthy during the soak: {} ({})", a.value("reason", ""),
                          a.value("state", ""));
      }
      if (!why.empty()) Failed(check[k], listed[k], "unhealthy_in_soak", why);
    }
  }

  // Every host this rollout updated goes back to its previous version, all
  // at once.
  void Halt() {
    json h = Event("halted");
    h.update({{"failures", failures_},
              {"budget", budget_.Describe()},
              {"rolling_back", updated_.size()}});
    emit_(h);
    if (updated_.empty()) return;
    ActivateSpec rb;
    rb.name = app_.name;
    rb.rollback = true;
    rb.rollout_id = id_;
    rb.timeout = spec_.health_timeout;
    NullReporter quiet;
    const auto back = RunTask(executor_, Pick(hosts_, updated_), *ActivateTask(rb), quiet);
    for (size_t k = 0; k < updated_.size(); ++k) {
      const size_t i = updated_[k];
      HostResult& acc = account_[i];
      acc.outcome = Outcome::kCommandFailed;
      if (back[k].outcome == Outcome::kOk) {
        ++rolled_back_;
        acc.error_code = "rolled-back-by-rollout";
        acc.summary = acc.message =
            fmt::format("updated, then rolled back to {} (the rollout halted)",
                        back[k].data.value("to_version", "?"));
        HostEvent("host_reverted", i, {{"to_version", back[k].data.value("to_version", "")}});
      } else {
        acc.error_code = "rollback_failed";
        acc.summary = acc.message = "rolling back failed: " + back[k].message;
        HostEvent("host_revert_failed", i, {{"message", back[k].message}});
      }
    }
  }

  const std::string id_;
  const std::chrono::steady_clock::time_point t0_ = std::chrono::steady_clock::now();
  Executor& executor_;
  const std::vector<const Host*>& hosts_;
  const RolloutSpec& spec_;
  const CopySource& bundle_;
  const app::AppSpec& app_;
  const EventSink& emit_;
  const std::atomic<bool>& stop_;
  FailureBudget budget_;
  std::vector<HostResult> account_;
  std::vector<size_t> updated_;  // hosts this rollout put on the new version
  size_t failures_ = 0, rolled_back_ = 0;
};

}  // namespace

Result<std::vector<std::vector<size_t>>> PlanWaves(size_t hosts, size_t canary,
                                                   const std::string& batch) {
  size_t per = 0;
  const bool percent = !batch.empty() && batch.back() == '%';
  const std::string digits = percent ? batch.substr(0, batch.size() - 1) : batch;
  if (digits.empty() || digits.size() > 9 ||
      digits.find_first_not_of("0123456789") != std::string::npos) {
    return Status::Invalid("--batch must be a number of hosts (5) or a percentage (25%), got '" +
                           batch + "'");
  }
  const unsigned long n = std::stoul(digits);
  if (n == 0 || (percent && n > 100)) {
    return Status::Invalid("--batch must be 1 or more hosts, or 1% to 100%, got '" + batch + "'");
  }
  per = percent ? static_cast<size_t>(std::ceil(static_cast<double>(hosts) * n / 100.0)) : n;
  per = std::max<size_t>(per, 1);
  std::vector<std::vector<size_t>> waves;
  size_t next = 0;
  if (canary > 0 && hosts > 0) {
    waves.emplace_back();
    for (; next < std::min(canary, hosts); ++next) waves.back().push_back(next);
  }
  while (next < hosts) {
    waves.emplace_back();
    for (size_t k = 0; k < per && next < hosts; ++k) waves.back().push_back(next++);
  }
  return waves;
}

bool FailureBudget::Spent(size_t failures) const {
  if (!max_failures && !max_ratio) return failures > 0;
  if (max_failures && failures > *max_failures) return true;
  return max_ratio && static_cast<double>(failures) > *max_ratio * static_cast<double>(hosts);
}

std::string FailureBudget::Describe() const {
  if (!max_failures && !max_ratio) return "no failure";
  std::vector<std::string> parts;
  if (max_failures) {
    parts.push_back(fmt::format("{} failure{}", *max_failures, *max_failures == 1 ? "" : "s"));
  }
  if (max_ratio) {
    parts.push_back(fmt::format("{:g}% of {} hosts ({:g})", *max_ratio * 100, hosts,
                                std::floor(*max_ratio * static_cast<double>(hosts))));
  }
  return fmt::format("{}", fmt::join(parts, " and "));
}

std::vector<HostResult> RunRollout(Executor& executor, const std::vector<const Host*>& hosts,
                                   const RolloutSpec& spec, const CopySource& bundle,
                                   const app::AppSpec& app, const EventSink& emit,
                                   const std::atomic<bool>& stop) {
  auto waves = PlanWaves(hosts.size(), spec.canary, spec.batch);
  if (!waves.ok()) return {};  // the command checked it before
  return Rollout(executor, hosts, spec, bundle, app, emit, stop).Run(*waves);
}

}  // namespace herd::control

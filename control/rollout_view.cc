// herd rollout's views: the events as lines for people, the plan a
// --dry-run shows, and `herd rollout status` (control/rollout.h). The
// engine that runs waves is rollout.cc.
#include <fmt/format.h>

#include <algorithm>

#include "control/rollout.h"
#include "herd/v1/app.pb.h"
#include "proto/rpc/agent_methods.h"

namespace herd::control {
namespace {

using nlohmann::json;

// The version people name for `seq` of `a` ("" when not installed).
std::string VersionOf(const v1::InstalledApp& a, uint64_t seq) {
  for (const auto& v : a.versions()) {
    if (v.sequence() == seq) return v.version();
  }
  return seq ? "#" + std::to_string(seq) : "nothing";
}

}  // namespace

// The app's entry in a host's List answer (null when it has none).
json AppOn(const HostResult& listed, const std::string& name) {
  if (listed.outcome != Outcome::kOk || !listed.data.contains("apps")) return nullptr;
  for (const auto& a : listed.data["apps"]) {
    if (a.value("name", "") == name) return a;
  }
  return nullptr;
}

Result<RolloutPoint> FindRollout(const std::vector<HostResult>& listed, const std::string& id) {
  RolloutPoint p;
  std::string first;  // the first host found carrying it
  for (const auto& r : listed) {
    if (r.outcome != Outcome::kOk || !r.data.contains("apps")) continue;
    for (const auto& a : r.data["apps"]) {
      if (!a.contains("last_activation")) continue;
      const json& l = a["last_activation"];
      if (l.value("rollout_id", "") != id) continue;
      const bool back = l.value("kind", "") == "rollback";
      const uint64_t seq =
          back ? l.value("from_sequence", uint64_t{0}) : l.value("to_sequence", uint64_t{0});
      std::string version;
      for (const auto& v : a.value("versions", json::array())) {
        if (v.value("sequence", uint64_t{0}) == seq) version = v.value("version", "");
      }
      const std::string name = a.value("name", "");
      if (p.carrying > 0 && (name != p.app || seq != p.sequence)) {
        return Status(StatusCode::kFailedPrecondition,
                      fmt::format("rollout {} is not one version: {} has {} sequence {}, {} has {} "
                                  "sequence {}",
                                  id, first, p.app, p.sequence, r.host, name, seq));
      }
      if (first.empty()) first = r.host;
      p.app = name;
      p.sequence = seq;
      if (p.version.empty()) p.version = version;
      ++p.carrying;
    }
  }
  if (p.carrying == 0) {
    return Status::NotFound("no host's last activation carries rollout " + id +
                            " (herd rollout status NAME TARGET shows each host's)");
  }
  if (p.version.empty()) {
    return Status(
        StatusCode::kFailedPrecondition,
        fmt::format("rollout {}: no host still holds {} sequence {}", id, p.app, p.sequence));
  }
  for (const auto& r : listed) {
    const json a = AppOn(r, p.app);
    if (!a.is_null() && a.value("current_sequence", uint64_t{0}) == p.sequence) ++p.on_version;
  }
  return p;
}

void RolloutProgress::Add(const json& e) {
  const std::string ev = e.value("event", "");
  if (ev == "rollout_started") {
    hosts_ = e.value("hosts", size_t{0});
    waves_ = e.value("waves", json::array()).size();
  } else if (ev == "wave_started") {
    wave_ = e.value("wave", size_t{0});
  } else if (ev == "host_updated") {
    ++done_;
  } else if (ev == "host_failed") {
    ++failed_;
  } else if (ev == "host_not_reached") {
    ++not_reached_;
  } else if (ev == "host_refused") {
    ++refused_;
  } else if (ev == "finished") {
    finished_ = true;
  }
}

std::string RolloutProgress::Line(size_t width) const {
  const size_t ended = done_ + failed_ + not_reached_ + refused_;
  const size_t filled = hosts_ ? std::min(width, ended * width / hosts_) : 0;
  return fmt::format("[{}{}] wave {}/{}  {}/{} done  {} failed  {} not reached  {} refused",
                     std::string(filled, '#'), std::string(width - filled, '.'), wave_, waves_,
                     done_, hosts_, failed_, not_reached_, refused_);
}

std::string EventLine(const json& e) {
  const std::string ev = e.value("event", "");
  const std::string host = e.value("host", "");
  if (ev == "rollout_started") {
    return fmt::format("rollout {} of {} {} (sequence {}) to {} hosts in {} waves; budget: {}",
                       e.value("rollout_id", ""), e.value("app", ""), e.value("version", ""),
                       e.value("sequence", 0), e.value("hosts", 0),
                       e.value("waves", json::array()).size(), e.value("budget", ""));
  }
  if (ev == "rollout_resumed") {
    return fmt::format("resuming rollout {} of {} {} (sequence {}): {} of {} hosts run it already",
                       e.value("rollout_id", ""), e.value("app", ""), e.value("version", ""),
                       e.value("sequence", 0), e.value("on_version", 0), e.value("hosts", 0));
  }
  if (ev == "wave_started") {
    return fmt::format("wave {}/{} ({}): {}", e.value("wave", 0), e.value("waves", 0),
                       e.value("kind", ""),
                       fmt::join(e.value("hosts", std::vector<std::string>{}), " "));
  }
  if (ev == "plan") {
    return fmt::format("  wave {}: {}: {}", e.value("wave", 0), host, e.value("change", ""));
  }
  if (ev == "host_updated") {
    const std::string from = e.value("from_version", "");
    return fmt::format("  {}: updated {} -> {} ({:.1f} s)", host, from.empty() ? "nothing" : from,
                       e.value("to_version", ""), e.value("duration_ms", 0) / 1000.0);
  }
  if (ev == "host_failed") {
    return fmt::format("  {}: FAILED (failure {}; budget: {}): {}", host, e.value("failures", 0),
                       e.value("budget", ""), e.value("message", ""));
  }
  if (ev == "host_not_reached")
    return fmt::format("  {}: not reached: {}", host, e.value("message", ""));
  if (ev == "host_refused") {
    return fmt::format("  {}: refused by the device: {}", host, e.value("message", ""));
  }
  if (ev == "halted") {
    const int failures = e.value("failures", 0), back = e.value("rolling_back", 0);
    return fmt::format(
        "halted: {} failure{} spent the budget ({}); {}", failures, failures == 1 ? "" : "s",
        e.value("budget", ""),
        back ? fmt::format("rolling back the {} host{} it updated", back, back == 1 ? "" : "s")
             : "no host to roll back");
  }
  if (ev == "host_reverted") {
    return fmt::format("  {}: rolled back to {}", host, e.value("to_version", ""));
  }
  if (ev == "host_revert_failed") {
    return fmt::format("  {}: ROLLING BACK FAILED: {}", host, e.value("message", ""));
  }
  if (ev == "finished") {
    std::string line = fmt::format(
        "rollout {}: {} updated, {} failed, {} not reached, {} refused by the device, {} not "
        "touched, {} rolled back, in {:.1f} s",
        e.value("outcome", ""), e.value("updated", 0), e.value("failed", 0),
        e.value("not_reached", 0), e.value("refused", 0), e.value("not_touched", 0),
        e.value("rolled_back", 0), e.value("duration_ms", 0) / 1000.0);
    if (e.contains("resume")) line += "\n  to resume: " + e.value("resume", "");
    return line;
  }
  if (ev == "host_account") {
    return fmt::format("  {}: [{}] {}", host, e.value("error_code", ""), e.value("message", ""));
  }
  return e.dump();
}

std::vector<HostResult> PlanRollout(Executor& executor, const std::vector<const Host*>& hosts,
                                    const std::vector<std::vector<size_t>>& waves,
                                    const app::AppSpec& app, std::chrono::milliseconds timeout,
                                    const EventSink& emit) {
  NullReporter quiet;
  auto listed = RunTask(executor, hosts, ListAppsTask(timeout), quiet);
  for (size_t w = 0; w < waves.size(); ++w) {
    for (size_t i : waves[w]) {
      std::string change;
      const json a = AppOn(listed[i], app.name);
      if (listed[i].outcome != Outcome::kOk) {
        change = "not reachable now: " + listed[i].message;
      } else if (!a.is_null() && a.value("current_sequence", uint64_t{0}) == app.sequence) {
        change = "nothing: on " + app.version + " already";
      } else {
        const std::string from = a.is_null() ? "" : a.value("current_version", "");
        change = fmt::format("install and activate {} (now {})", app.version,
                             from.empty() ? "not active" : from);
      }
      json e = {{"event", "plan"}};
      e.update({{"wave", w + 1}, {"host", hosts[i]->name}, {"change", change}});
      emit(e);
    }
  }
  return listed;
}

Task RolloutStatusTask(const std::string& name, std::chrono::milliseconds timeout) {
  return UnaryTask<v1::ListAppsReply>(
      MakeOperation(rpc::app_method::kList, CallShape::kUnary, v1::ListAppsRequest(), timeout),
      [name](const v1::ListAppsReply& r, const CallEnd&) {
        for (const auto& a : r.apps()) {
          if (a.name() != name) continue;
          const v1::Activation& l = a.last_activation();
          const std::string current =
              a.current_sequence() ? VersionOf(a, a.current_sequence()) : "not active";
          std::string last = "never activated";
          if (a.has_last_activation()) {
            last = fmt::format("last {} {} -> {}: {}{}{}", l.kind(),
                               VersionOf(a, l.from_sequence()), VersionOf(a, l.to_sequence()),
                               l.outcome().empty() ? "in progress (" + l.step() + ")" : l.outcome(),
                               l.reason().empty() ? "" : " (" + l.reason() + ")",
                               l.rollout_id().empty() ? "" : ", rollout " + l.rollout_id());
          }
          return OkResult(fmt::format("{} {}, {}; {}", name, current,
                                      a.health().empty() ? a.state() : a.health(), last),
                          {{"name", name},
                           {"current_version", a.current_sequence() ? current : ""},
                           {"current_sequence", a.current_sequence()},
                           {"state", a.state()},
                           {"health", a.health()},
                           {"kind", l.kind()},
                           {"from_sequence", l.from_sequence()},
                           {"to_sequence", l.to_sequence()},
                           {"step", l.step()},
                           {"outcome", l.outcome()},
                           {"reason", l.reason()},
                           {"rollout_id", l.rollout_id()}});
        }
        return OkResult(name + " not installed", {{"name", name}, {"current_version", ""}});
      });
}

}  // namespace herd::control

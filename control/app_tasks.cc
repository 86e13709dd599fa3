// The tasks of the app commands that run on devices: herd apps, herd app
// activate | rollback | remove, herd logs (control/tasks.h).
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <ctime>
#include <map>
#include <memory>
#include <set>
#include <thread>

#include "common/app/manifest.h"
#include "common/duration.h"
#include "control/tasks.h"
#include "herd/v1/app.pb.h"
#include "proto/rpc/agent_methods.h"

namespace herd::control {
namespace {

namespace app_method = rpc::app_method;

nlohmann::json ToJson(const v1::Activation& a) {
  return {{"id", a.id()},
          {"kind", a.kind()},
          {"from_sequence", a.from_sequence()},
          {"to_sequence", a.to_sequence()},
          {"step", a.step()},
          {"snapshot", a.snapshot()},
          {"outcome", a.outcome()},
          {"reason", a.reason()},
          {"started_unix", a.started_unix()},
          {"ended_unix", a.ended_unix()},
          {"rollout_id", a.rollout_id()}};
}

Status CheckName(const std::string& name) {
  if (std::string e = app::AppNameError(name); !e.empty()) return Status::Invalid("NAME " + e);
  return Status::Ok();
}

// One app's line: "notes 1.1 running okay (ok), 2 restarts, up 3m, bwrap/cgroup-v1
// [1.2 (3), 1.1 (2)*, 1.0 (1)]": the installed versions (sequence), * the current one.
std::string Line(const v1::InstalledApp& a) {
  std::string versions;
  for (const auto& v : a.versions()) {
    versions += fmt::format("{}{} ({}){}", versions.empty() ? "" : ", ", v.version(), v.sequence(),
                            v.sequence() == a.current_sequence() ? "*" : "");
  }
  if (a.current_sequence() == 0) return fmt::format("{} not activated [{}]", a.name(), versions);
  std::string up = a.started_unix() > 0
                       ? ", up " + FormatDuration(std::chrono::seconds(
                                       std::max<int64_t>(0, std::time(nullptr) - a.started_unix())))
                       : "";
  return fmt::format("{} {} {} {} ({}), {} restarts{}, {}/{} [{}]", a.name(), a.current_version(),
                     a.state(), a.health(), a.reason(), a.restarts(), up, a.sandbox(), a.limits(),
                     versions);
}

}  // namespace

Task ListAppsTask(std::chrono::milliseconds timeout) {
  return UnaryTask<v1::ListAppsReply>(
      MakeOperation(app_method::kList, CallShape::kUnary, v1::ListAppsRequest(), timeout),
      [](const v1::ListAppsReply& r, const CallEnd&) {
        nlohmann::json apps = nlohmann::json::array();
        std::vector<std::string> parts;
        for (const auto& a : r.apps()) {
          nlohmann::json versions = nlohmann::json::array();
          for (const auto& v : a.versions()) {
            versions.push_back(
                {{"version", v.version()},
                 {"sequence", v.sequence()},
                 {"bundle_sha256", v.bundle_sha256()},
                 {"files", v.files()},
                 {"bytes", v.bytes()},
                 {"installed_unix", v.installed_unix()},
                 {"signers", std::vector<std::string>(v.signers().begin(), v.signers().end())}});
          }
          nlohmann::json j = {{"name", a.name()},
                              {"versions", versions},
                              {"current_sequence", a.current_sequence()},
                              {"current_version", a.current_version()},
                              {"previous_sequence", a.previous_sequence()},
                              {"running_sequence", a.running_sequence()},
                              {"data_format", a.data_format()},
                              {"state", a.state()},
                              {"health", a.health()},
                              {"reason", a.reason()},
                              {"restarts", a.restarts()},
                              {"started_unix", a.started_unix()},
                              {"pid", a.pid()},
                              {"sandbox", a.sandbox()},
                              {"limits", a.limits()},
                              {"rss_bytes", a.rss_bytes()},
                              {"cpu_seconds", a.cpu_seconds()},
                              {"last_exit", a.last_exit()}};
          if (a.has_last_activation()) j["last_activation"] = ToJson(a.last_activation());
          apps.push_back(std::move(j));
          parts.push_back(Line(a));
        }
        return OkResult(parts.empty() ? std::string("no apps installed")
                                      : fmt::format("{}", fmt::join(parts, "; ")),
                        {{"apps", apps}});
      });
}

Result<Task> ActivateTask(const ActivateSpec& spec) {
  if (Status s = CheckName(spec.name); !s.ok()) return s;
  v1::ActivateRequest req;
  req.set_name(spec.name);
  req.set_rollback(spec.rollback);
  req.set_restore_data(spec.restore_data);
  req.set_no_snapshot(spec.no_snapshot);
  req.set_rollout_id(spec.rollout_id);
  if (!spec.rollback) {
    if (spec.version.empty()) return Status::Invalid("VERSION is required");
    req.set_version(spec.version);
  }
  return UnaryTask<v1::ActivateReply>(
      MakeOperation(app_method::kActivate, CallShape::kUnary, req, spec.timeout),
      [name = spec.name](const v1::ActivateReply& r, const CallEnd&) {
        const auto& a = r.activation();
        const std::string from = r.from_version().empty() ? "nothing" : r.from_version();
        HostResult res =
            OkResult(a.reason() == "already-active"
                         ? fmt::format("{} {} is active already", name, r.to_version())
                     : a.outcome() == "committed"
                         // No timings: --fold groups the hosts (JSON has duration_ms).
                         ? fmt::format("{} {} -> {}: committed (snapshot {})", name, from,
                                       r.to_version(), a.snapshot())
                         : fmt::format("{} {} -> {}: {} ({}): {} runs", name, from, r.to_version(),
                                       a.outcome(), a.reason(),
                                       a.outcome() == "failed" ? "nothing healthy" : from),
                     {{"name", name},
                      {"from_version", r.from_version()},
                      {"to_version", r.to_version()},
                      {"duration_ms", r.duration_ms()},
                      {"snapshot_ms", r.snapshot_ms()},
                      {"stop_ms", r.stop_ms()},
                      {"start_ms", r.start_ms()},
                      {"first_healthy_ms", r.first_healthy_ms()},
                      {"activation", ToJson(a)}});
        if (a.outcome() != "committed") {
          res.outcome = Outcome::kCommandFailed;
          res.error_code = a.outcome();
          res.message = res.summary;
        }
        return res;
      });
}

Result<Task> RemoveAppTask(const std::string& name, bool purge, std::chrono::milliseconds timeout) {
  if (Status s = CheckName(name); !s.ok()) return s;
  v1::RemoveAppRequest req;
  req.set_name(name);
  req.set_purge(purge);
  return UnaryTask<v1::RemoveAppReply>(
      MakeOperation(app_method::kRemove, CallShape::kUnary, req, timeout),
      [name, purge](const v1::RemoveAppReply&, const CallEnd&) {
        return OkResult(fmt::format("{} removed{}", name, purge ? " with its data" : ", data kept"),
                        {{"name", name}, {"purged", purge}});
      });
}

Result<Task> AppLogsTask(const std::string& name, uint32_t tail,
                         std::chrono::milliseconds timeout) {
  if (Status s = CheckName(name); !s.ok()) return s;
  v1::AppLogsRequest req;
  req.set_name(name);
  req.set_tail(tail);
  Task t = UnaryTask<v1::AppLogsReply>(
      MakeOperation(app_method::kLogs, CallShape::kUnary, req, timeout),
      [](const v1::AppLogsReply& r, const CallEnd&) {
        return OkResult(fmt::format("({} bytes of log)", r.text().size()), {{"log", r.text()}});
      },
      [](const v1::AppLogsReply& r, const OutputFn& out) { out(false, r.text()); });
  return t;
}

namespace {

// Passes a follow round's output on; a host's failure only the first time.
class FollowReporter final : public Reporter {
 public:
  explicit FollowReporter(Reporter& out) : out_(out) {}
  void OnOutput(const Host& host, bool is_stderr, std::string_view data) override {
    out_.OnOutput(host, is_stderr, data);
  }
  void OnResult(const HostResult& r) override {
    if (r.outcome != Outcome::kOk && !r.error_code.empty() && failed_.insert(r.host).second) {
      out_.OnResult(r);
    }
  }
  void OnFinish(const std::vector<HostResult>&, std::chrono::milliseconds) override {}

 private:
  Reporter& out_;
  std::set<std::string> failed_;
};

}  // namespace

std::vector<HostResult> FollowAppLogs(Executor& executor, const std::vector<const Host*>& hosts,
                                      const std::string& name, uint32_t tail,
                                      std::chrono::milliseconds timeout, Reporter& reporter,
                                      const std::atomic<bool>& stop,
                                      std::chrono::milliseconds every) {
  const auto t0 = std::chrono::steady_clock::now();
  auto first = AppLogsTask(name, tail, timeout);
  std::vector<HostResult> last;
  if (!first.ok()) return last;
  auto offsets = std::make_shared<std::map<std::string, uint64_t>>();
  FollowReporter forward(reporter);
  reporter.OnStart(hosts.size());
  Task task = std::move(*first);
  for (bool initial = true; !stop.load(); initial = false) {
    if (!initial) {
      // Each host from where its log ended last time.
      for (const Host* h : hosts) {
        v1::AppLogsRequest req;
        req.set_name(name);
        req.set_from_offset(true);
        req.set_offset((*offsets)[h->name]);
        task.op.request_for[h->name] = std::make_shared<const std::string>(req.SerializeAsString());
      }
    }
    task.make_reader = [offsets](const Host& host) {
      const std::string who = host.name;
      return std::make_unique<UnaryReader<v1::AppLogsReply>>(
          [offsets, who](const v1::AppLogsReply& r, const CallEnd&) {
            (*offsets)[who] = r.end_offset();
            return OkResult("", {});
          },
          [](const v1::AppLogsReply& r, const OutputFn& out) {
            if (!r.text().empty()) out(false, r.text());
          });
    };
    auto round = RunTask(executor, hosts, task, forward);
    if (stop.load() && !last.empty()) break;  // cut short: the last whole round counts
    last = std::move(round);
    // Until the next look, or Ctrl-C.
    for (auto waited = std::chrono::milliseconds(0); waited < every && !stop.load();
         waited += std::chrono::milliseconds(50)) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }
  reporter.OnFinish(last, std::chrono::duration_cast<std::chrono::milliseconds>(
                              std::chrono::steady_clock::now() - t0));
  return last;
}

}  // namespace herd::control

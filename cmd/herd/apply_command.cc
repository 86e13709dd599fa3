// herd apply FILE [TARGET] [--check] [--diff], herd drift [FILE] [TARGET],
// herd provision ADDRESS --token-file F --name NAME [--labels ...]
// (docs/provisioning.md): the fleet spec made true on hosts
// (control/apply.h), what no longer matches it, and a fresh device enrolled
// and configured in one step.
#include <fmt/format.h>

#include <iostream>

#include "cmd/herd/cli.h"
#include "common/defaults.h"
#include "common/duration.h"
#include "control/apply.h"
#include "control/enroll.h"
#include "control/fleet_spec.h"
#include "control/pki_store.h"

namespace herd::cli {
namespace {

using ms = std::chrono::milliseconds;
using nlohmann::json;

class ApplyCommandsImpl final : public CommandGroup {
 public:
  explicit ApplyCommandsImpl(Globals& g) : g_(g) {}

  void Add(CLI::App& app) override {
    apply_ = app.add_subcommand(
        "apply",
        "Make hosts match a fleet spec (fleet.yaml): labels, files, directories, "
        "guarded commands and app versions, changing only what differs");
    apply_->add_option("file", file_, "The fleet spec (YAML)")->required();
    apply_->add_option("target", target_, "Only these of the hosts the spec selects (default all)");
    apply_->add_flag("--check", check_,
                     "Change nothing: report what would change (exit 5 when something would)");
    apply_->add_flag("--diff", diff_, "Show files' differences (unified diff; never of secrets)");
    apply_->add_option("--health-timeout", health_timeout_,
                       "App entries: how long each host's activation may take (default 10m)");
    apply_->footer(
        "Examples:\n  herd apply fleet.yaml                  # every host the spec selects\n"
        "  herd apply fleet.yaml role=web --check --diff\n\n"
        "Per host and item: ok, changed, failed or skipped. A second apply right after a "
        "successful one changes nothing. See docs/provisioning.md.");

    drift_ = app.add_subcommand(
        "drift", "List the hosts and items that no longer match a fleet spec (changes nothing)");
    drift_->add_option("file", drift_file_, "The fleet spec (default fleet.yaml)");
    drift_->add_option("target", drift_target_, "Only these hosts (default all)");
    drift_->footer(
        "One line per item that differs (-o json: JSON Lines {host, kind, key, outcome, "
        "detail}).\nExit 0: nothing differs; 5: something does; 2, 4, 6: hosts failed or were "
        "unreachable.");

    provision_ = app.add_subcommand(
        "provision", "Enrol a fresh device, label it and apply the fleet spec to it, in one step");
    provision_->add_option("address", enrol_.address, "The agent's gRPC address host[:port]")
        ->required();
    provision_->add_option("--token-file", enrol_.token_file,
                           "Its join token (a copy of its <state_dir>/join-token)");
    provision_->add_option("--token", enrol_.token, "The join token itself (shows in ps)")
        ->envname("HERD_JOIN_TOKEN");
    provision_->add_option("--name", enrol_.name, "Its fleet name")->required();
    provision_->add_option("--labels", enrol_.labels, "Labels k=v,k=v (inventory and device)")
        ->delimiter(',');
    provision_->add_option("--spec", spec_file_, "The fleet spec to apply (default fleet.yaml)");
    provision_->add_option("--metrics", enrol_.metrics,
                           "Its /metrics host:port for the inventory (default: same host, 9420)");
    provision_->footer(
        "Example:\n  herd provision 192.168.1.20 --token-file token --name attic --labels "
        "role=nas --spec fleet.yaml\n\nThe device ends enrolled, in the inventory, labelled and "
        "configured as the spec says for it.");
  }

  std::vector<CLI::App*> TargetCommands() const override { return {apply_, drift_}; }

  std::optional<int> Run() override {
    if (*apply_) {
      mode_ = check_ ? Mode::kCheck : Mode::kApply;
      return Apply(file_, target_, {});
    }
    if (*drift_) {
      mode_ = Mode::kDrift;
      check_ = true;
      return Apply(drift_file_.empty() ? "fleet.yaml" : drift_file_, drift_target_, {});
    }
    if (*provision_) return Provision();
    return std::nullopt;
  }

 private:
  enum class Mode { kApply, kCheck, kDrift };

  // Loads and checks the spec, plans the hosts and applies (or checks);
  // `extra_labels` go to every planned host's labels (provision's).
  int Apply(const std::string& file, const std::string& target,
            const std::map<std::string, std::string>& extra_labels) {
    // The spec first: an invalid one touches no host.
    auto spec = control::LoadFleetSpec(file);
    if (!spec.ok()) return Fail(spec.status().message());
    auto targets = control::SelectTargets(g_.inventory, target.empty() ? "all" : target,
                                          !target.empty(), true, g_.allow_empty);
    if (!targets.ok()) return Fail(targets.status().message());
    auto plans = control::PlanHosts(*spec, *targets->inventory);
    if (!plans.ok()) return Fail(plans.status().message());
    for (auto& [host, plan] : *plans) {
      for (const auto& [k, v] : extra_labels) plan.labels[k] = v;
    }
    std::vector<const control::Host*> hosts;
    for (const control::Host* h : targets->hosts) {
      if (plans->count(h->name)) hosts.push_back(h);
    }
    if (hosts.empty() && !g_.allow_empty) {
      return Fail(fmt::format("no host of '{}' is selected by any entry of {}",
                              target.empty() ? "all" : target, file));
    }
    targets->hosts = hosts;
    control::ApplyOptions o;
    o.check = check_;
    o.diff = diff_ && mode_ != Mode::kDrift;
    auto health = ParseDuration(health_timeout_);
    if (!health.ok()) return Fail("--health-timeout: " + health.status().message());
    o.health_timeout = *health;
    const bool as_json = Output(g_).format == control::OutputFormat::kJson;
    const control::EventSink emit = [as_json](const json& e) {
      std::cout << (as_json ? e.dump() : control::EventLine(e)) << '\n' << std::flush;
    };
    size_t pending = 0;
    const auto& all_plans = *plans;
    const int code = RunOnHosts(
        g_, std::move(*targets), ms(60'000),
        [&](ms t) -> Result<Operate> {
          o.timeout = t;
          return Operate([&](control::Executor& executor,
                             const std::vector<const control::Host*>& on,
                             control::Reporter& reporter) {
            std::map<std::string, v1::ApplyRequest> requests;
            for (const control::Host* h : on) {
              requests[h->name] = control::ApplyRequestFor(all_plans.at(h->name), *h, o);
            }
            auto task = control::ApplyTask(requests, o);
            if (Output(g_).format == control::OutputFormat::kText) task.collect_output_bytes = 0;
            control::NullReporter quiet;
            auto results =
                control::RunTask(executor, on, task, mode_ == Mode::kDrift ? quiet : reporter);
            control::ApplyApps(executor, on, all_plans, o, emit, Interrupted(), &results);
            if (mode_ == Mode::kDrift) PrintDrift(results);
            if (mode_ != Mode::kDrift) PrintApps(results, as_json);
            pending = control::PendingItems(results);
            return results;
          });
        },
        true, false);
    if (code == 0 && check_ && pending > 0) {
      return static_cast<int>(control::ExitCode::kChangesPending);
    }
    return code;
  }

  // App items are known after the reporter's summary: their lines follow.
  void PrintApps(const std::vector<control::HostResult>& results, bool as_json) const {
    for (const auto& r : results) {
      if (!r.data.is_object() || !r.data.contains("items")) continue;
      for (const auto& item : r.data["items"]) {
        if (item.value("kind", "") != "app" || item.value("outcome", "") == "ok") continue;
        if (as_json) {
          json out = item;
          out["host"] = r.host;
          out["type"] = "app";
          std::cout << out.dump() << '\n';
        } else {
          std::cout << r.host << ": " << control::ItemLine(item) << '\n';
        }
      }
    }
    std::cout << std::flush;
  }

  void PrintDrift(const std::vector<control::HostResult>& results) const {
    const bool as_json = Output(g_).format == control::OutputFormat::kJson;
    size_t hosts = 0, items = 0;
    auto print = [&](const std::string& host, json item) {
      if (as_json) {
        item["host"] = host;
        std::cout << item.dump() << '\n';
      } else {
        std::cout << host << ": " << control::ItemLine(item) << '\n';
      }
    };
    for (const auto& r : results) {
      bool drifted = false;
      if (r.outcome != control::Outcome::kOk && !r.data.contains("items")) {
        print(r.host, {{"kind", "host"},
                       {"key", r.host},
                       {"outcome", control::OutcomeName(r.outcome)},
                       {"detail", r.message}});
        continue;
      }
      for (const auto& item : r.data.value("items", json::array())) {
        if (item.value("outcome", "") == "ok") continue;
        print(r.host, item);
        drifted = true;
        ++items;
      }
      hosts += drifted;
    }
    if (!as_json && !g_.quiet) {
      std::cout << fmt::format("drift: {} of {} hosts, {} items\n", hosts, results.size(), items);
    }
    std::cout << std::flush;
  }

  int Provision() {
    if (spec_file_.empty()) spec_file_ = "fleet.yaml";
    // The spec is checked before the device is touched.
    if (auto spec = control::LoadFleetSpec(spec_file_); !spec.ok()) {
      return Fail(spec.status().message());
    }
    std::map<std::string, std::string> labels;
    for (const auto& kv : enrol_.labels) {
      const auto eq = kv.find('=');
      if (eq == std::string::npos || eq == 0)
        return Fail("--labels: '" + kv + "' is not KEY=VALUE");
      labels[kv.substr(0, eq)] = kv.substr(eq + 1);
    }
    enrol_.pki_dir = control::ResolvePkiDir(g_.pki_dir);
    enrol_.identity = g_.identity;
    enrol_.inventory_path = control::ResolveInventoryPath(g_.inventory);
    enrol_.add_to_inventory = true;
    enrol_.wait = true;
    rpc::InitGrpcRuntime(GrpcDebugLog());
    const control::EnrollReport r = control::EnrollDevice(enrol_);
    if (!r.status.ok()) {
      std::fprintf(stderr, "herd: error: %s\n", r.status.message().c_str());
      return static_cast<int>(r.exit);
    }
    control::MakeRecordWriter(Output(g_))->Write(control::EnrollRecord(r));
    mode_ = Mode::kApply;
    g_.inventory = enrol_.inventory_path;
    return Apply(spec_file_, enrol_.name, labels);
  }

  Globals& g_;
  CLI::App *apply_ = nullptr, *drift_ = nullptr, *provision_ = nullptr;
  std::string file_, target_, drift_file_, drift_target_, spec_file_, health_timeout_ = "10m";
  bool check_ = false, diff_ = false;
  Mode mode_ = Mode::kApply;
  control::EnrollOptions enrol_;
};

}  // namespace

std::unique_ptr<CommandGroup> ApplyCommands(Globals& g) {
  return std::make_unique<ApplyCommandsImpl>(g);
}

}  // namespace herd::cli

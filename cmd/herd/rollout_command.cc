// herd rollout BUNDLE TARGET: a signed app bundle across the hosts TARGET
// selects, a canary first, then batches; the rollout halts and rolls back
// by itself once failures spend its budget (control/rollout.h,
// docs/rollouts.md).
#include <fmt/format.h>
#include <unistd.h>

#include <cstdio>
#include <iostream>
#include <memory>

#include "cmd/herd/cli.h"
#include "common/app/bundle.h"
#include "common/app/catalog.h"
#include "common/defaults.h"
#include "common/duration.h"
#include "common/text.h"
#include "control/rollout.h"

namespace herd::cli {
namespace {

using ms = std::chrono::milliseconds;

class Rollout final : public CommandGroup {
 public:
  explicit Rollout(Globals& g) : g_(g) {}

  void Add(CLI::App& app) override {
    cmd_ = app.add_subcommand(
        "rollout",
        "Roll a signed app bundle out across hosts: a canary, then batches, each installed and "
        "activated before the next; halts and rolls back by itself when failures spend the budget");
    cmd_->add_option("bundle", spec_.bundle,
                     "The .herd file, or NAME@VERSION: each host installs it from its own "
                     "catalogues (required)");
    cmd_->add_option("--channel", spec_.channel,
                     "With NAME@VERSION: the catalogue channel (default: each host's own)");
    cmd_->add_option("target", target_, "Hosts, in the order the waves take them (required)");
    status_ = cmd_->add_subcommand(
        "status",
        "Where an app's rollouts stand on hosts, read from the hosts alone: version, "
        "health, last activation and its rollout id (--fold groups hosts alike)");
    status_->add_option("name", status_name_, "The app")->required();
    status_->add_option("target", status_target_, "Hosts")->required();
    resume_ = cmd_->add_subcommand(
        "resume",
        "Go on with rollout ID on hosts: its app and version are read from the hosts' last "
        "activations; hosts on it count as updated, the others get it in waves (give the same "
        "--canary/--batch/budget flags: the plan is not stored on the devices)");
    resume_->add_option("id", resume_id_, "The rollout id (rollout_started, herd rollout status)")
        ->required();
    resume_->add_option("target", resume_target_, "Hosts")->required();
    resume_->add_option("--bundle", resume_bundle_,
                        "The .herd file to send (default: each host installs the version from "
                        "its catalogues)");
    cmd_->add_option("--canary", spec_.canary, "Hosts in the first wave (default 1; 0: none)")
        ->check(CLI::Range(0, 1'000'000));
    cmd_->add_option("--batch", spec_.batch,
                     "Hosts per later wave: N, or P% of all hosts (default 25%)");
    cmd_->add_option("--max-failures", max_failures_,
                     "Failures tolerated: one more halts the rollout (default 0, unless "
                     "--max-failure-ratio is given)")
        ->check(CLI::Range(0, 1'000'000));
    cmd_->add_option("--max-failure-ratio", max_ratio_,
                     "Failures tolerated as a fraction of all hosts (0 to 1)")
        ->check(CLI::Range(0.0, 1.0));
    cmd_->add_option("--health-timeout", health_timeout_,
                     "Longest a host's activation may take to commit, healthy (default 10m)");
    cmd_->add_option("--pause", pause_,
                     "Soak between waves; the updated hosts must still be healthy after it "
                     "(default 0s)");
    cmd_->add_flag("--dry-run", dry_run_,
                   "Show the waves and what each host would change; change nothing");
    cmd_->add_flag("-y,--yes", yes_,
                   "Do not ask first (for pipelines: needed when stdin is not a terminal)");
    cmd_->footer(
        "Examples:\n"
        "  herd rollout notes-1.1.herd all --dry-run\n"
        "  herd rollout notes@1.1 all --yes   # each host fetches it from its catalogue\n"
        "  herd rollout notes-1.1.herd all --canary 1 --batch 25% --max-failures 2 --yes\n"
        "  herd -o json rollout notes-1.1.herd @web --pause 5m --yes   # JSON Lines events\n"
        "  herd rollout status notes all --fold\n"
        "  herd rollout resume r20261204-101500-1a2b all --yes   # after Ctrl-C, or from another "
        "machine\n\n"
        "A failure: an activation that reverted itself, no healthy commit within "
        "--health-timeout, a host unreachable after its install began, a host unhealthy after "
        "--pause. Offline and refusing hosts are counted apart. Exit 0 when every host is on "
        "the version; 2 when the rollout halted or a host failed or refused; 4 when some were "
        "not reached; 130 after Ctrl-C (between waves: herd rollout resume ID TARGET goes on). "
        "docs/rollouts.md.");
  }

  std::vector<CLI::App*> TargetCommands() const override { return {cmd_, status_, resume_}; }

  std::optional<int> Run() override {
    if (!*cmd_) return std::nullopt;
    if (*status_) {
      return RunTaskOnTargets(g_, status_target_, kDefaultHostTimeout, [this](ms t) {
        return Result<control::Task>(control::RolloutStatusTask(status_name_, t));
      });
    }
    const bool resuming = resume_->parsed();
    if (resuming) {
      target_ = resume_target_;
      spec_.bundle = resume_bundle_;
      spec_.id = resume_id_;
      if (!IsRolloutId(resume_id_)) {
        return Fail("rollout ID '" + Excerpt(resume_id_) +
                    "' is not one herd makes (A-Z a-z 0-9 . _ -)");
      }
    } else if (spec_.bundle.empty() || target_.empty()) {
      return Fail("herd rollout needs BUNDLE and TARGET (herd rollout --help)");
    }
    auto health = ParseDuration(health_timeout_);
    if (!health.ok()) return Fail("--health-timeout: " + health.status().message());
    auto pause = ParseDuration(pause_);
    if (!pause.ok()) return Fail("--pause: " + pause.status().message());
    spec_.health_timeout = *health;
    spec_.pause = *pause;
    if (max_failures_ >= 0) spec_.max_failures = static_cast<size_t>(max_failures_);
    if (max_ratio_ >= 0) spec_.max_failure_ratio = max_ratio_;
    if (auto w = control::PlanWaves(1, spec_.canary, spec_.batch); !w.ok()) {
      return Fail(w.status().message());
    }
    spec_.catalog = resuming ? resume_bundle_.empty() : IsAppRef(spec_.bundle);
    spec_.target = target_;
    if (!spec_.catalog && !spec_.channel.empty()) {
      return Fail("--channel goes with NAME@VERSION (a rollout from the hosts' catalogues) only");
    }
    app::AppSpec app;
    if (spec_.catalog && !resuming) {
      auto ref = app::ParseAppRef(spec_.bundle);
      if (!ref.ok()) return Fail(ref.status().message());
      if (ref->version.empty()) return Fail("name the version: " + ref->name + "@VERSION");
    } else if (!spec_.catalog) {
      auto head = app::ReadHead(spec_.bundle);
      if (!head.ok()) return Fail(head.status().message());
      app = head->manifest.app;
    }
    if (!yes_ && !dry_run_ && !::isatty(STDIN_FILENO)) {
      return Fail(
          "herd rollout changes hosts: confirm with --yes (stdin is not a terminal), or "
          "see the plan with --dry-run");
    }
    const bool json = Output(g_).format == control::OutputFormat::kJson;
    // On a terminal, a progress bar on stderr under the event lines.
    const bool bar = !json && Output(g_).progress;
    auto progress = std::make_shared<control::RolloutProgress>();
    const control::EventSink emit = [json, bar, progress](const nlohmann::json& e) {
      if (bar) std::cerr << "\r\033[K" << std::flush;
      std::cout << (json ? e.dump() : control::EventLine(e)) << '\n' << std::flush;
      progress->Add(e);
      if (bar && !progress->finished()) std::cerr << progress->Line() << std::flush;
    };
    return RunOnTargets(
        g_, target_, kDefaultCommandTimeout,
        [&](ms t) -> Result<Operate> {
          spec_.timeout = t;
          control::CopySource source;
          if (!spec_.catalog) {
            auto bundle = control::ReadCopySource(spec_.bundle);
            if (!bundle.ok()) return bundle.status();
            source = *bundle;
          }
          return Operate([&, source](control::Executor& executor,
                                     const std::vector<const control::Host*>& hosts,
                                     control::Reporter&) mutable {
            if (resuming) {
              if (Status s = Resume(executor, hosts, app, emit); !s.ok()) {
                Fail(s.message());
                return NotRun(hosts, s.message());
              }
            }
            if (spec_.catalog) {
              if (Status s = control::ResolveFromCatalog(executor, hosts, spec_, &app, &source);
                  !s.ok()) {
                Fail(s.message());
                return NotRun(hosts, s.message());
              }
            }
            auto waves = *control::PlanWaves(hosts.size(), spec_.canary, spec_.batch);
            if (dry_run_) {
              if (!json) {
                std::cout << fmt::format("plan: {} {} (sequence {}) to {} hosts in {} waves\n",
                                         app.name, app.version, app.sequence, hosts.size(),
                                         waves.size());
              }
              return control::PlanRollout(executor, hosts, waves, app, spec_.timeout, emit);
            }
            if (!yes_ && !Confirm(app, hosts.size(), waves.size())) {
              return NotRun(hosts, "");  // skipped: exit 130
            }
            return control::RunRollout(executor, hosts, spec_, source, app, emit, Interrupted());
          });
        },
        true, false);
  }

 private:
  // Where rollout spec_.id stands, from the hosts: its app and version
  // become the rollout's (from the catalogues, or the --bundle, which must
  // be that version).
  Status Resume(control::Executor& executor, const std::vector<const control::Host*>& hosts,
                const app::AppSpec& bundle_app, const control::EventSink& emit) {
    control::NullReporter quiet;
    const auto listed =
        control::RunTask(executor, hosts, control::ListAppsTask(spec_.timeout), quiet);
    auto point = control::FindRollout(listed, spec_.id);
    if (!point.ok()) return point.status();
    if (!spec_.catalog && (bundle_app.name != point->app || bundle_app.version != point->version)) {
      return Status::Invalid(fmt::format("rollout {} rolls {} {}; --bundle {} is {} {}", spec_.id,
                                         point->app, point->version, spec_.bundle, bundle_app.name,
                                         bundle_app.version));
    }
    if (spec_.catalog) spec_.bundle = point->app + "@" + point->version;
    emit({{"event", "rollout_resumed"},
          {"elapsed_ms", 0},
          {"rollout_id", spec_.id},
          {"app", point->app},
          {"version", point->version},
          {"sequence", point->sequence},
          {"hosts", hosts.size()},
          {"carrying", point->carrying},
          {"on_version", point->on_version}});
    return Status::Ok();
  }

  // Every host untouched: skipped (exit 130), or refused with `why`.
  static std::vector<control::HostResult> NotRun(const std::vector<const control::Host*>& hosts,
                                                 const std::string& why) {
    std::vector<control::HostResult> out(hosts.size());
    for (size_t i = 0; i < hosts.size(); ++i) {
      out[i].host = hosts[i]->name;
      if (!why.empty()) {
        out[i].outcome = control::Outcome::kRejected;
        out[i].message = why;
      }
    }
    return out;
  }

  static bool Confirm(const app::AppSpec& app, size_t hosts, size_t waves) {
    std::cerr << fmt::format("Roll {} {} out to {} hosts in {} waves? [y/N] ", app.name,
                             app.version, hosts, waves);
    std::string answer;
    if (!std::getline(std::cin, answer)) return false;
    return answer == "y" || answer == "Y" || answer == "yes";
  }

  Globals& g_;
  CLI::App *cmd_ = nullptr, *status_ = nullptr, *resume_ = nullptr;
  std::string status_name_, status_target_, resume_id_, resume_target_, resume_bundle_;
  control::RolloutSpec spec_;
  std::string target_, health_timeout_ = "10m", pause_ = "0s";
  long max_failures_ = -1;
  double max_ratio_ = -1;
  bool dry_run_ = false, yes_ = false;
};

}  // namespace

std::unique_ptr<CommandGroup> RolloutCommand(Globals& g) { return std::make_unique<Rollout>(g); }

}  // namespace herd::cli

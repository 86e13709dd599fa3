// herd audit TARGET [--since DUR] [--verify]: every device's audit trail, and
// the check of its hash chain.
#include <chrono>

#include "cmd/herd/cli.h"
#include "common/defaults.h"
#include "common/duration.h"
#include "control/audit.h"

namespace herd::cli {
namespace {

class Audit final : public CommandGroup {
 public:
  explicit Audit(Globals& g) : g_(g) {}

  void Add(CLI::App& app) override {
    audit_ = app.add_subcommand("audit", "Read the agents' audit trails (one JSON line each)");
    audit_->add_option("target", target_, "Hosts")->required();
    audit_->add_option("--since", since_, "How far back, e.g. 1h, 30m, 7d as 168h (default 24h)");
    audit_->add_flag("--verify", verify_,
                     "Check each device's hash chain over every entry it keeps: an edited, "
                     "removed or reordered entry fails the host; prints the chain head to "
                     "compare over time");
  }

  std::vector<CLI::App*> TargetCommands() const override { return {audit_}; }

  std::optional<int> Run() override {
    if (!*audit_) return std::nullopt;
    return RunTaskOnTargets(
        g_, target_, kDefaultHostTimeout,
        [this](std::chrono::milliseconds timeout) -> Result<control::Task> {
          if (verify_) return control::AuditVerifyTask(timeout);
          auto back = ParseDuration(since_);
          if (!back.ok()) return Status::Invalid("--since: " + back.status().message());
          const auto now = std::chrono::duration_cast<std::chrono::seconds>(
                               std::chrono::system_clock::now().time_since_epoch())
                               .count();
          return control::AuditTask(
              now - std::chrono::duration_cast<std::chrono::seconds>(*back).count(), 10000,
              timeout);
        });
  }

 private:
  Globals& g_;
  CLI::App* audit_ = nullptr;
  std::string target_, since_ = "24h";
  bool verify_ = false;
};

}  // namespace

std::unique_ptr<CommandGroup> AuditCommand(Globals& g) { return std::make_unique<Audit>(g); }

}  // namespace herd::cli

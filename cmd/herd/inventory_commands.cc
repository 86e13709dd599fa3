// herd inventory [TARGET] and herd targets [TARGET] [-w FILE]: what the
// inventory holds, for people, scripts and Prometheus.
#include <cstdio>

#include "cmd/herd/cli.h"
#include "common/file.h"
#include "control/records.h"
#include "control/session.h"
#include "control/targets.h"

namespace herd::cli {
namespace {

class Inventory final : public CommandGroup {
 public:
  explicit Inventory(Globals& g) : g_(g) {}

  void Add(CLI::App& app) override {
    inventory_ = app.add_subcommand("inventory", "List the hosts a TARGET selects");
    inventory_->add_option("target", target_, "Hosts (default: all)");
    targets_ = app.add_subcommand("targets", "Print Prometheus file_sd JSON for TARGET");
    targets_->add_option("target", target_, "Hosts (default: all)");
    targets_->add_option("-w,--write", write_, "Write atomically to this file instead of stdout");
  }

  std::vector<CLI::App*> TargetCommands() const override { return {inventory_, targets_}; }

  std::optional<int> Run() override {
    if (!*inventory_ && !*targets_) return std::nullopt;
    CLI::App* sub = *inventory_ ? inventory_ : targets_;
    // Only these two default to all, and only when TARGET is left out.
    auto t = control::SelectTargets(g_.inventory, target_, sub->count("target") > 0, true,
                                    g_.allow_empty);
    if (!t.ok()) return Fail(t.status().message());
    if (*inventory_) {
      auto out = control::MakeRecordWriter(Output(g_));
      for (const auto* h : t->hosts) out->Write(control::HostRecord(*h));
      return 0;
    }
    const std::string text = control::FileSdText(t->hosts);
    if (write_.empty()) {
      std::fputs(text.c_str(), stdout);
      return 0;
    }
    // Atomic, through a fresh temporary name, so Prometheus never reads half a file.
    if (Status st = WriteFileAtomic(write_, text, 0644); !st.ok()) return Fail(st.message());
    std::fprintf(stderr, "herd: wrote %zu targets to %s\n", t->hosts.size(), write_.c_str());
    return 0;
  }

 private:
  Globals& g_;
  CLI::App *inventory_ = nullptr, *targets_ = nullptr;
  std::string target_, write_;
};

}  // namespace

std::unique_ptr<CommandGroup> InventoryCommands(Globals& g) {
  return std::make_unique<Inventory>(g);
}

}  // namespace herd::cli

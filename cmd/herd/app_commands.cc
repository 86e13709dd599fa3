// herd app keygen | pack | sign | inspect: making and checking signed app
// bundles on the publisher's machine; herd app install | activate |
// rollback | remove, herd apps and herd logs: the apps on the devices a
// TARGET selects.
#include "cmd/herd/cli.h"
#include "common/app/catalog.h"
#include "common/defaults.h"
#include "control/app_bundle.h"
#include "control/tasks.h"

namespace herd::cli {
namespace {

class Apps final : public CommandGroup {
 public:
  explicit Apps(Globals& g) : g_(g) {}

  void Add(CLI::App& app) override {
    app_ =
        app.add_subcommand("app", "Make, sign, check and install app bundles (NAME-VERSION.herd)");
    app_->require_subcommand(1);
    keygen_ =
        app_->add_subcommand("keygen", "Make a publisher key pair: NAME.key (0600), NAME.pub");
    keygen_->add_option("name", name_, "Key name")->required();
    keygen_->add_option("--dir", dir_, "Folder for the key files (default: the working folder)");
    pack_ = app_->add_subcommand("pack", "Pack DIR (with app.yaml) into NAME-VERSION.herd");
    pack_->add_option("dir", dir_, "The app's folder; app.yaml describes it")->required();
    pack_->add_option("-o,--out", out_, "Bundle to write (default NAME-VERSION.herd here)");
    sign_ = app_->add_subcommand("sign", "Add a signature to a bundle");
    sign_->add_option("bundle", bundle_, "The .herd file")->required();
    sign_->add_option("--key", key_, "A herd app secret key (herd app keygen)");
    sign_->add_option("--minisig", minisig_,
                      "A signature minisign made of the manifest (herd app inspect "
                      "--manifest-out M; minisign -S -m M)");
    inspect_ = app_->add_subcommand(
        "inspect", "Show a bundle's manifest, check its payload and which signatures verify");
    inspect_->add_option("bundle", bundle_, "The .herd file")->required();
    inspect_->add_option("--key", keys_, "Public key file(s) to verify against (repeatable)");
    inspect_->add_option("--manifest-out", manifest_out_, "Write the signed manifest bytes here");
    inspect_->add_option("--signatures-out", signatures_out_,
                         "Write the signatures here (minisign -V -x FILE -m MANIFEST)");
    install_ = app_->add_subcommand(
        "install",
        "Install a signed bundle on hosts (each checks it against its own trust); a host that "
        "has it receives nothing, an upload cut short resumes where it ended. Or NAME[@VERSION]: "
        "each host fetches it from its own catalogues (docs/catalog.md)");
    install_->add_option("target", target_, "Hosts")->required();
    install_
        ->add_option("bundle", install_spec_.bundle,
                     "The .herd file, or NAME[@VERSION] from the hosts' catalogues")
        ->required();
    install_->add_option("--channel", catalog_spec_.channel,
                         "With NAME[@VERSION]: the catalogue channel (default: each host's own)");
    install_->add_flag("--allow-downgrade", install_spec_.allow_downgrade,
                       "Install even though a higher sequence of the app is installed");
    activate_ = app_->add_subcommand(
        "activate", "Activate an installed version on hosts: health-gated, reverts by itself");
    activate_->add_option("target", target_, "Hosts")->required();
    activate_->add_option("name", activate_spec_.name, "The app")->required();
    activate_->add_option("version", activate_spec_.version, "The version (as app.yaml names it)")
        ->required();
    activate_->add_flag("--no-snapshot", activate_spec_.no_snapshot,
                        "Go on without a snapshot of the app's data (when none can be taken)");
    rollback_ = app_->add_subcommand(
        "rollback", "Go back to the previous version on hosts (health-gated like activate)");
    rollback_->add_option("target", target_, "Hosts")->required();
    rollback_->add_option("name", activate_spec_.name, "The app")->required();
    rollback_->add_flag("--restore-data", activate_spec_.restore_data,
                        "Also put back the data as it was before the current version (what was "
                        "written since is lost)");
    remove_ = app_->add_subcommand("remove", "Stop an app and remove its versions from hosts");
    remove_->add_option("target", target_, "Hosts")->required();
    remove_->add_option("name", activate_spec_.name, "The app")->required();
    remove_->add_flag("--purge", purge_, "Delete its data too (admin role)");
    app_->footer(
        "Example:\n  herd app keygen acme\n  herd app pack ./notes\n"
        "  herd app sign notes-1.0.herd --key acme.key\n"
        "  herd app inspect notes-1.0.herd --key acme.pub\n"
        "  herd app install all notes-1.0.herd\n  herd app install all notes@1.1   (from a "
        "catalogue)\n  herd app activate all notes 1.0\n"
        "  herd apps all\n  herd logs web1 notes --tail 20\n  herd app rollback web1 notes\n\n"
        "app.yaml fields, the bundle format and the device's policy: docs/apps.md.");
    apps_ = app.add_subcommand("apps", "List the apps and versions installed on hosts");
    apps_->add_option("target", target_, "Hosts")->required();
    logs_ = app.add_subcommand("logs", "Show the end of an app's log (stdout and stderr) on hosts");
    logs_->add_option("target", target_, "Hosts")->required();
    logs_->add_option("app", activate_spec_.name, "The app")->required();
    logs_->add_option("--tail", tail_, "Lines from the end (default 100)")
        ->check(CLI::Range(1, 100000));
    logs_->add_flag("-f,--follow", follow_,
                    "Then keep printing what the logs gain (every second) until Ctrl-C");
  }

  std::vector<CLI::App*> TargetCommands() const override {
    return {install_, apps_, activate_, rollback_, remove_, logs_};
  }

  std::optional<int> Run() override {
    if (*apps_) {
      return RunTaskOnTargets(g_, target_, kDefaultHostTimeout, [](std::chrono::milliseconds t) {
        return Result<control::Task>(control::ListAppsTask(t));
      });
    }
    if (*logs_ && follow_) {
      return RunOnTargets(
          g_, target_, kDefaultHostTimeout, [this](std::chrono::milliseconds t) -> Result<Operate> {
            if (Status s = control::AppLogsTask(activate_spec_.name, tail_, t).status(); !s.ok()) {
              return s;
            }
            return Operate([this, t](control::Executor& executor,
                                     const std::vector<const control::Host*>& hosts,
                                     control::Reporter& reporter) {
              return control::FollowAppLogs(executor, hosts, activate_spec_.name, tail_, t,
                                            reporter, Interrupted());
            });
          });
    }
    if (*logs_) {
      return RunTaskOnTargets(g_, target_, kDefaultHostTimeout,
                              [this](std::chrono::milliseconds t) {
                                return control::AppLogsTask(activate_spec_.name, tail_, t);
                              });
    }
    if (!*app_) return std::nullopt;
    if (*activate_ || *rollback_) {
      activate_spec_.rollback = rollback_->parsed();
      // The activation's own deadlines bound it on the device; this only
      // bounds the wait for an answer.
      return RunTaskOnTargets(g_, target_, std::chrono::minutes(10),
                              [this](std::chrono::milliseconds t) {
                                activate_spec_.timeout = t;
                                return control::ActivateTask(activate_spec_);
                              });
    }
    if (*remove_) {
      return RunTaskOnTargets(g_, target_, kDefaultCommandTimeout,
                              [this](std::chrono::milliseconds t) {
                                return control::RemoveAppTask(activate_spec_.name, purge_, t);
                              });
    }
    if (*install_ && IsAppRef(install_spec_.bundle)) {
      auto ref = app::ParseAppRef(install_spec_.bundle);
      if (!ref.ok()) return Fail(ref.status().message());
      catalog_spec_.name = ref->name;
      catalog_spec_.version = ref->version;
      catalog_spec_.allow_downgrade = install_spec_.allow_downgrade;
      return RunTaskOnTargets(g_, target_, kDefaultCommandTimeout,
                              [this](std::chrono::milliseconds t) -> Result<control::Task> {
                                catalog_spec_.timeout = t;
                                return control::CatalogInstallTask(catalog_spec_);
                              });
    }
    if (*install_) {
      if (!catalog_spec_.channel.empty()) return Fail("--channel goes with NAME[@VERSION] only");
      return RunOnTargets(
          g_, target_, kDefaultCommandTimeout,
          [this](std::chrono::milliseconds t) -> Result<Operate> {
            install_spec_.timeout = t;
            auto bundle = control::ReadCopySource(install_spec_.bundle);
            if (!bundle.ok()) return bundle.status();
            return Operate([this, source = *bundle](control::Executor& executor,
                                                    const std::vector<const control::Host*>& hosts,
                                                    control::Reporter& reporter) {
              return control::InstallApp(executor, hosts, install_spec_, source, reporter);
            });
          });
    }
    Result<control::Record> r = Status::Internal("no app command");
    if (*keygen_) r = control::KeygenApp(dir_.empty() ? "." : dir_, name_);
    if (*pack_) r = control::PackApp(dir_, out_);
    if (*sign_) r = control::SignApp(bundle_, key_, minisig_);
    if (*inspect_) r = control::InspectApp(bundle_, keys_, manifest_out_, signatures_out_);
    if (!r.ok()) return Fail(r.status().message());
    control::MakeRecordWriter(Output(g_))->Write(*r);
    if (*inspect_) {
      // Exit 2 when the payload or a signature does not hold.
      const auto& j = r->json;
      bool bad = !j["payload_ok"].get<bool>();
      for (const auto& s : j["signatures"])
        bad = bad || s["status"].get<std::string>().rfind("BAD", 0) == 0;
      if (bad) return 2;
    }
    return 0;
  }

 private:
  Globals& g_;
  CLI::App *app_ = nullptr, *keygen_ = nullptr, *pack_ = nullptr, *sign_ = nullptr,
           *inspect_ = nullptr, *install_ = nullptr, *apps_ = nullptr, *activate_ = nullptr,
           *rollback_ = nullptr, *remove_ = nullptr, *logs_ = nullptr;
  std::string target_;
  control::InstallSpec install_spec_;
  control::CatalogInstallSpec catalog_spec_;
  control::ActivateSpec activate_spec_;
  bool purge_ = false, follow_ = false;
  uint32_t tail_ = 100;
  std::string name_, dir_, out_, bundle_, key_, minisig_, manifest_out_, signatures_out_;
  std::vector<std::string> keys_;
};

}  // namespace

std::unique_ptr<CommandGroup> AppCommands(Globals& g) { return std::make_unique<Apps>(g); }

}  // namespace herd::cli

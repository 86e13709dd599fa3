// herd ca init, herd cert issue|revoke|agent|list|renew, herd enroll: the
// fleet CA, certificates for people, pipelines and agents, and enrolment.
#include <cstdio>
#include <ctime>

#include "cmd/herd/cli.h"
#include "common/defaults.h"
#include "control/enroll.h"
#include "control/hostlist.h"
#include "control/pki_store.h"
#include "control/records.h"
#include "control/renew.h"
#include "control/revocation.h"
#include "control/tasks.h"

namespace herd::cli {
namespace {

class Pki final : public CommandGroup {
 public:
  explicit Pki(Globals& g) : g_(g) {}

  void Add(CLI::App& app) override {
    auto* ca = app.add_subcommand("ca", "Manage the fleet certificate authority");
    ca->require_subcommand(1);
    ca_init_ = ca->add_subcommand("init", "Create the fleet CA (P-256; refuses to replace one)");
    ca_init_->add_option("--name", ca_name_, "CA common name (default 'herd fleet CA')");
    ca_init_->add_option("--days", days_, "Validity in days (default 3650)")
        ->check(CLI::Range(1, 36500));

    auto* cert = app.add_subcommand("cert", "Certificates for people and pipelines");
    cert->require_subcommand(1);
    issue_ = cert->add_subcommand("issue", "Issue a client certificate with a role");
    issue_->add_option("name", name_, "Who it is for, e.g. alice or ci-deploy")->required();
    issue_->add_option("--role", role_, "viewer, operator or admin")
        ->required()
        ->check(CLI::IsMember({"viewer", "operator", "admin"}));
    issue_->add_option("--days", days_, "Validity in days (default 365)")
        ->check(CLI::Range(1, 36500));
    issue_->add_option("--out", out_dir_, "Write NAME.key and NAME.crt here (default: --pki-dir)");
    revoke_ = cert->add_subcommand(
        "revoke", "Revoke a certificate (identity NAME or serial) and push the list to TARGET");
    revoke_->add_option("name", name_, "Identity name (NAME.crt in the PKI folder) or serial")
        ->required();
    revoke_->add_option("target", target_, "Agents to push the revocation list to");
    agent_ = cert->add_subcommand("agent", "Issue an agent's server certificate");
    agent_->add_option("name", name_, "The agent's inventory name")->required();
    agent_->add_option("--days", days_, "Validity in days (default 365)")
        ->check(CLI::Range(1, 36500));
    agent_->add_option("--out", out_dir_,
                       "Write agent.key, agent.crt, ca.crt here (default PKI/agents/NAME); "
                       "give the folder to herdd --tls-dir");
    list_ =
        cert->add_subcommand("list", "List the PKI folder's certificates: role, expiry, revoked");
    renew_ = cert->add_subcommand(
        "renew", "Renew agents' certificates in place (same device key, no restart)");
    renew_->add_option("target", target_, "Agents to renew")->required();
    renew_->add_option("--days", days_, "Validity of the new certificates in days (default 365)")
        ->check(CLI::Range(1, 36500));

    enroll_ = app.add_subcommand(
        "enroll",
        "Enrol a fresh agent: sign its device key, hand it the fleet CA, add it to "
        "the inventory");
    enroll_->add_option("address", enrol_.address, "The agent's gRPC address host[:port]")
        ->required();
    enroll_
        ->add_option("--token", enrol_.token,
                     "The agent's one-time join token (shows in ps: prefer --token-file or "
                     "$HERD_JOIN_TOKEN)")
        ->envname("HERD_JOIN_TOKEN");
    enroll_->add_option(
        "--token-file", enrol_.token_file,
        "Read the join token from this file (a copy of its <state_dir>/join-token)");
    enroll_->add_option("--name", enrol_.name, "Its fleet name (inventory and certificate)")
        ->required();
    enroll_->add_option("--labels", enrol_.labels, "Inventory labels k=v,k=v")->delimiter(',');
    enroll_->add_option("--metrics", enrol_.metrics,
                        "Its /metrics host:port for the inventory (default: same host, " +
                            std::to_string(kDefaultMetricsPort) + ")");
    enroll_->add_option("--days", days_, "Certificate validity in days (default 365)")
        ->check(CLI::Range(1, 36500));
    enroll_->add_flag("--no-inventory", no_inventory_, "Do not add the host to the inventory");
    enroll_->add_flag("--no-wait", no_wait_,
                      "Return once the agent has its certificate, without waiting until it "
                      "serves mTLS");
    enroll_->footer(
        "Example:\n  herd enroll 192.168.1.20 --token-file token --name attic --labels "
        "role=nas,zone=home\n\nThe agent's private key never leaves it; the token never crosses "
        "the wire and\nworks once. Needs the fleet CA key (--pki-dir).");
  }

  std::vector<CLI::App*> TargetCommands() const override { return {revoke_, renew_}; }

  std::optional<int> Run() override {
    if (*ca_init_) return CaInit();
    if (*issue_) return Issue();
    if (*revoke_) return Revoke();
    if (*enroll_) return Enroll();
    if (*list_) return List();
    if (*agent_) return AgentCert();
    if (*renew_) return Renew();
    return std::nullopt;
  }

 private:
  std::string PkiDir() const { return control::ResolvePkiDir(g_.pki_dir); }
  int Days(int fallback) const { return days_ ? days_ : fallback; }

  int Print(const char* what, const Result<control::IssuedFiles>& f) {
    if (!f.ok()) return Fail(f.status().message());
    control::MakeRecordWriter(Output(g_))->Write(control::IssuedRecord(what, *f));
    return 0;
  }

  int CaInit() {
    return Print("created fleet CA", control::InitFleetCa(PkiDir(), ca_name_, Days(3650)));
  }

  int Issue() {
    auto role = pki::ParseRole(role_);
    if (!role.ok()) return Fail(role.status().message());
    return Print("issued certificate for",
                 control::IssueClientCert(PkiDir(), name_, *role, Days(365), out_dir_));
  }

  int AgentCert() {
    return Print("issued agent certificate for",
                 control::IssueAgentCert(PkiDir(), name_, Days(365), out_dir_));
  }

  int List() {
    auto ids = control::ListIdentities(PkiDir());
    if (!ids.ok()) return Fail(ids.status().message());
    auto out = control::MakeRecordWriter(Output(g_));
    const std::time_t now = std::time(nullptr);
    for (const auto& id : *ids) out->Write(control::IdentityRecord(id, now));
    return 0;
  }

  int Revoke() {
    const bool push = !target_.empty();
    auto revoked = control::RevokeForPush(PkiDir(), name_, g_.identity, push && !g_.plaintext);
    if (!revoked.ok()) return Fail(revoked.status().message());
    for (const auto& w : revoked->warnings) std::fprintf(stderr, "herd: warning: %s\n", w.c_str());
    const auto& list = revoked->list;
    std::fprintf(stderr,
                 "herd: %s revoked (serial %s); the list holds %zu serial(s), version %llu\n",
                 name_.c_str(), revoked->serial.c_str(), list.serials.size(),
                 static_cast<unsigned long long>(list.version));
    if (!push) {
      std::fprintf(stderr,
                   "herd: agents take it at their next contact with herd (any command) or at "
                   "enrolment; push it now with: herd cert revoke %s TARGET\n",
                   name_.c_str());
      return 0;
    }
    const bool live_text = Output(g_).format == control::OutputFormat::kText;
    return RunOnTargets(
        g_, target_, kDefaultHostTimeout,
        [&](std::chrono::milliseconds timeout) -> Result<Operate> {
          auto task = std::make_shared<control::Task>(control::RevocationsTask(list, timeout));
          if (live_text) task->collect_output_bytes = 0;
          return Operate([task](control::Executor& executor,
                                const std::vector<const control::Host*>& hosts,
                                control::Reporter& reporter) {
            auto results = control::RunTask(executor, hosts, *task, reporter);
            std::vector<std::string> missed;
            for (const auto& r : results) {
              if (r.outcome != control::Outcome::kOk) missed.push_back(r.host);
            }
            if (!missed.empty()) {
              std::fprintf(stderr,
                           "herd: not reached: %s (they take the list at their next contact "
                           "with herd, any command)\n",
                           control::FoldHosts(missed).c_str());
            }
            return results;
          });
        },
        /*catch_up_revocations=*/false);
  }

  int Renew() {
    return RunOnTargets(
        g_, target_, kDefaultHostTimeout,
        [this](std::chrono::milliseconds timeout) -> Result<Operate> {
          auto ca = control::LoadFleetCa(PkiDir());
          if (!ca.ok()) return ca.status();
          return Operate(
              [ca = *ca, days = Days(365), timeout](control::Executor& executor,
                                                    const std::vector<const control::Host*>& hosts,
                                                    control::Reporter& reporter) {
                return control::RenewCertificates(executor, hosts, ca, days, timeout, reporter);
              });
        });
  }

  int Enroll() {
    enrol_.days = Days(365);
    enrol_.pki_dir = PkiDir();
    enrol_.identity = g_.identity;
    enrol_.inventory_path = control::ResolveInventoryPath(g_.inventory);
    enrol_.add_to_inventory = !no_inventory_;
    enrol_.wait = !no_wait_;
    rpc::InitGrpcRuntime(GrpcDebugLog());
    const control::EnrollReport r = control::EnrollDevice(enrol_);
    if (!r.status.ok()) {
      std::fprintf(stderr, "herd: error: %s\n", r.status.message().c_str());
      return static_cast<int>(r.exit);
    }
    control::MakeRecordWriter(Output(g_))->Write(control::EnrollRecord(r));
    return 0;
  }

  Globals& g_;
  CLI::App *ca_init_ = nullptr, *issue_ = nullptr, *revoke_ = nullptr, *agent_ = nullptr,
           *list_ = nullptr, *renew_ = nullptr, *enroll_ = nullptr;
  std::string ca_name_ = "herd fleet CA", name_, role_, out_dir_, target_;
  int days_ = 0;
  control::EnrollOptions enrol_;
  bool no_inventory_ = false, no_wait_ = false;
};

}  // namespace

std::unique_ptr<CommandGroup> PkiCommands(Globals& g) { return std::make_unique<Pki>(g); }

}  // namespace herd::cli

// herd: the fleet CLI. Parses flags, loads the inventory, calls control/, and
// maps the results to an exit code. Nothing else lives here.
#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <iostream>

#include "common/duration.h"
#include "common/file.h"
#include "control/enroll.h"
#include "control/fanout.h"
#include "control/host_result.h"
#include "control/inventory.h"
#include "control/mux.h"
#include "control/output.h"
#include "control/pki_store.h"
#include "control/selector.h"
#include "control/targets.h"
#include "control/tasks.h"
#include "grpc_runtime.h"

namespace {

using herd::control::ExitCode;
namespace hc = herd::control;

std::atomic<bool> g_interrupted{false};

void OnSigint(int) {
  g_interrupted.store(true);
  ::signal(SIGINT, SIG_DFL);  // a second Ctrl-C ends herd at once
}

int Fail(const std::string& msg) {
  std::fprintf(stderr, "herd: error: %s\n", msg.c_str());
  return static_cast<int>(ExitCode::kHerdError);
}

// gRPC's own log lines (TLS handshake details and the like) only with
// HERD_DEBUG=1: herd reports every host's outcome in its own words.
herd::GrpcLogSink GrpcDebugLog() {
  const char* debug = std::getenv("HERD_DEBUG");
  if (!debug || !*debug || std::string(debug) == "0") return nullptr;
  return [](int, const std::string& msg) { std::fprintf(stderr, "herd: grpc: %s\n", msg.c_str()); };
}

void RaiseFdLimit() {
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
}

struct Globals {
  std::string inventory;
  std::string output = "text";
  bool fold = false;
  size_t forks = 128;
  std::string timeout;
  bool allow_empty = false;
  bool no_progress = false;
  bool quiet = false;
};

const char* kSelectorHelp = R"(TARGET selects hosts from the inventory:
  all                every host           node*, web-?    name globs
  node[01-05,09]     numeric ranges       @web            a group
  role=web           label equals         zone!=eu        label differs (values may glob)
  A,B  union         A+B  intersection    A~B  A except B
  '+' binds tighter than ',', which binds tighter than '~'; ( ) group.
  Quote globs and parentheses for the shell: herd run 'node*~node03' -- uptime)";

const char* kExitHelp =
    R"(Exit codes: 0 all hosts ok, 1 herd's own error (flags, inventory, selector),
2 some host failed, 4 some host unreachable, 6 both, 130 interrupted.)";

// The first word on the command line that is neither an option nor an
// option's value: what the user meant as the command.
std::string FirstWord(CLI::App& app, int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--") break;
    if (a.size() > 1 && a[0] == '-') {
      const CLI::Option* o =
          a.find('=') == std::string::npos ? app.get_option_no_throw(a) : nullptr;
      if (o != nullptr && o->get_expected_min() > 0) ++i;  // skip its value
      continue;
    }
    return a;
  }
  return "";
}

// herd's own words for a command line CLI11 refused: prefixed like every other
// herd error, naming an unknown command, with a hint for run's -e.
int ParseFailure(CLI::App& app, const CLI::App& run, const CLI::ParseError& e, int argc,
                 char** argv) {
  std::string msg = e.what();
  if (app.get_subcommands().empty()) {
    const std::string word = FirstWord(app, argc, argv);
    if (word == "help") {
      std::printf("%s", app.help().c_str());
      return 0;
    }
    std::string names;
    for (const auto* sub : app.get_subcommands({})) {
      names += (names.empty() ? "" : ", ") + sub->get_name();
    }
    msg = word.empty() ? "no command given" : "unknown command '" + word + "'";
    msg += "; commands: " + names;
  } else if (run.parsed() && dynamic_cast<const CLI::ExtrasError*>(&e) != nullptr) {
    msg += " (one KEY=VALUE per -e: -e A=1 -e B=2; the command goes after --)";
  }
  std::fprintf(stderr, "herd: error: %s\nRun 'herd --help', or 'herd COMMAND --help', for more.\n",
               msg.c_str());
  return static_cast<int>(ExitCode::kHerdError);
}

class Cli {
 public:
  int Main(int argc, char** argv) {
    CLI::App app{"herd: fan commands out across a fleet of herdd agents.", "herd"};
    app.require_subcommand(1);
    app.set_version_flag("--version", std::string("herd ") + HERD_VERSION);
    app.add_option("-i,--inventory", g_.inventory, "Inventory YAML file")
        ->envname("HERD_INVENTORY");
    app.add_option("-o,--output", g_.output, "Output format: text or json (JSON Lines)")
        ->check(CLI::IsMember({"text", "json"}));
    app.add_flag("--fold", g_.fold, "Group hosts with identical output: node[01-05,09]");
    app.add_option("-f,--forks", g_.forks, "Hosts contacted at once (default 128)")
        ->check(CLI::Range(1, 100000));
    app.add_option("-t,--timeout", g_.timeout,
                   "Deadline per host, e.g. 500ms, 10s, 2m (default 10s; run and copy 60s)");
    app.add_flag("--allow-empty", g_.allow_empty, "A TARGET that matches no host is not an error");
    app.add_flag("--no-progress", g_.no_progress, "No live progress line on stderr");
    app.add_flag("-q,--quiet", g_.quiet, "No summary line at the end");
    app.add_option("--identity", identity_,
                   "Client certificate NAME.crt/NAME.key in the PKI folder (default admin)")
        ->envname("HERD_IDENTITY");
    app.add_flag("--plaintext", plaintext_,
                 "No TLS: only for agents started with --plaintext (loopback development)");

    auto* ping = app.add_subcommand("ping", "Check that agents answer (round trip, version)");
    ping->add_option("target", target_, "Hosts to ping (see TARGET below)")->required();

    auto* run = app.add_subcommand("run", "Run a command on hosts: herd run TARGET -- CMD ARGS...");
    run->add_option("target", target_, "Hosts to run on")->required();
    run->add_option("command", command_, "Command and arguments, after --; run directly, no shell");
    run->add_option("--shell", shell_, "Run this pipeline with /bin/sh -c instead of CMD");
    run->add_option("-e,--env", env_, "Set an environment variable KEY=VALUE (repeatable)")
        ->allow_extra_args(false);
    run->add_option("--cwd", cwd_, "Working directory on the host (default: agent state dir)");
    run->add_option(
        "--max-output", max_output_,
        "Bytes of stdout and of stderr kept per host, 1 to 67108864 "
        "(default 1048576; the rest is drained and dropped, the result says truncated)");
    run->footer(
        "Examples:\n  herd run all -- uptime\n  herd run @web --fold -- cat /etc/os-release"
        "\n  herd run 'role=db' --shell 'df -h / | tail -1'"
        "\n  herd run node07 -t 5s -e LANG=C -- ls -l /tmp\n\n"
        "Global flags (-t/--timeout, -o json, --fold, -f/--forks, -i, --identity, ...) may come\n"
        "before or after 'run'; everything after -- is the command. See herd --help.");

    auto* facts = app.add_subcommand(
        "facts", "Show host facts: OS, kernel, CPUs, memory, disk, uptime, agent labels");
    facts->add_option("target", target_, "Hosts")->required();

    auto* health = app.add_subcommand("health", "Run the agents' health checks");
    health->add_option("target", target_, "Hosts")->required();

    auto* copy = app.add_subcommand("copy", "Copy a local file to hosts (checksummed, atomic)");
    copy->add_option("target", target_, "Hosts")->required();
    copy->add_option("src", src_, "Local file")->required();
    copy->add_option("dst", dst_, "Absolute destination path on each host")->required();
    copy->add_option("--mode", mode_, "Permission bits in octal, e.g. 0644 (default: SRC's)");

    auto* inv = app.add_subcommand("inventory", "List the hosts a TARGET selects");
    inv->add_option("target", target_, "Hosts (default: all)");

    auto* targets = app.add_subcommand("targets", "Print Prometheus file_sd JSON for TARGET");
    targets->add_option("target", target_, "Hosts (default: all)");
    targets->add_option("-w,--write", write_, "Write atomically to this file instead of stdout");

    auto* audit = app.add_subcommand("audit", "Read the agents' audit trails (one JSON line each)");
    audit->add_option("target", target_, "Hosts")->required();
    audit->add_option("--since", since_, "How far back, e.g. 1h, 30m, 7d as 168h (default 24h)");

    app.add_option("--pki-dir", pki_dir_, "Credential folder (default ~/.config/herd/pki)")
        ->envname("HERD_PKI_DIR");
    auto* ca = app.add_subcommand("ca", "Manage the fleet certificate authority");
    ca->require_subcommand(1);
    auto* ca_init =
        ca->add_subcommand("init", "Create the fleet CA (P-256; refuses to replace one)");
    ca_init->add_option("--name", ca_name_, "CA common name (default 'herd fleet CA')");
    ca_init->add_option("--days", days_, "Validity in days (default 3650)")
        ->check(CLI::Range(1, 36500));
    auto* cert = app.add_subcommand("cert", "Certificates for people and pipelines");
    cert->require_subcommand(1);
    auto* cert_issue = cert->add_subcommand("issue", "Issue a client certificate with a role");
    cert_issue->add_option("name", cert_name_, "Who it is for, e.g. alice or ci-deploy")
        ->required();
    cert_issue->add_option("--role", role_, "viewer, operator or admin")
        ->required()
        ->check(CLI::IsMember({"viewer", "operator", "admin"}));
    cert_issue->add_option("--days", days_, "Validity in days (default 365)")
        ->check(CLI::Range(1, 36500));
    cert_issue->add_option("--out", out_dir_,
                           "Write NAME.key and NAME.crt here (default: --pki-dir)");
    auto* revoke = cert->add_subcommand(
        "revoke", "Revoke a certificate (identity NAME or serial) and push the list to TARGET");
    revoke->add_option("name", cert_name_, "Identity name (NAME.crt in the PKI folder) or serial")
        ->required();
    revoke->add_option("target", target_, "Agents to push the revocation list to");
    auto* cert_agent = cert->add_subcommand("agent", "Issue an agent's server certificate");
    cert_agent->add_option("name", cert_name_, "The agent's inventory name")->required();
    cert_agent->add_option("--days", days_, "Validity in days (default 365)")
        ->check(CLI::Range(1, 36500));
    cert_agent->add_option("--out", out_dir_,
                           "Write agent.key, agent.crt, ca.crt here (default PKI/agents/NAME); "
                           "give the folder to herdd --tls-dir");

    auto* cert_list =
        cert->add_subcommand("list", "List the PKI folder's certificates: role, expiry, revoked");
    auto* renew = cert->add_subcommand(
        "renew", "Renew agents' certificates in place (same device key, no restart)");
    renew->add_option("target", target_, "Agents to renew")->required();
    renew->add_option("--days", days_, "Validity of the new certificates in days (default 365)")
        ->check(CLI::Range(1, 36500));

    auto* enroll = app.add_subcommand(
        "enroll",
        "Enrol a fresh agent: sign its device key, hand it the fleet CA, add it to "
        "the inventory");
    enroll->add_option("address", enroll_.address, "The agent's gRPC address host[:port]")
        ->required();
    enroll
        ->add_option("--token", enroll_.token,
                     "The agent's one-time join token (shows in ps: prefer --token-file or "
                     "$HERD_JOIN_TOKEN)")
        ->envname("HERD_JOIN_TOKEN");
    enroll->add_option("--token-file", enroll_token_file_,
                       "Read the join token from this file (a copy of its <state_dir>/join-token)");
    enroll->add_option("--name", enroll_.name, "Its fleet name (inventory and certificate)")
        ->required();
    enroll->add_option("--labels", enroll_labels_, "Inventory labels k=v,k=v")->delimiter(',');
    enroll->add_option("--metrics", enroll_metrics_,
                       "Its /metrics host:port for the inventory (default: same host, 9420)");
    enroll->add_option("--days", days_, "Certificate validity in days (default 365)")
        ->check(CLI::Range(1, 36500));
    enroll->add_flag("--no-inventory", no_inventory_, "Do not add the host to the inventory");
    enroll->add_flag("--no-wait", no_wait_,
                     "Return once the agent has its certificate, without waiting until it "
                     "serves mTLS");
    enroll->footer(
        "Example:\n  herd enroll 192.168.1.20 --token-file token --name attic --labels "
        "role=nas,zone=home\n\nThe agent's private key never leaves it; the token never crosses "
        "the wire and\nworks once. Needs the fleet CA key (--pki-dir).");

    auto* mux = app.add_subcommand(
        "mux", "Keep warm mTLS connections to agents between commands (like ssh ControlMaster)");
    mux->require_subcommand(1);
    auto* mux_start =
        mux->add_subcommand("start", "Start the mux for --identity in the background");
    mux_start->add_option("--idle", mux_idle_, "Exit after this long without calls (default 10m)");
    mux_start->add_flag("--foreground", mux_foreground_, "Serve in the foreground (Ctrl-C stops)");
    auto* mux_stop = mux->add_subcommand("stop", "Stop the mux for --identity");
    auto* mux_status =
        mux->add_subcommand("status", "Is a mux running for --identity? Exit 0 running, 3 not");
    mux->footer(
        "mux status exits 0 when running, 3 when not.\n"
        "While a mux runs for the identity in use, herd sends every call through it: one\n"
        "local connection instead of a TLS handshake per host. Agents still see and check\n"
        "the caller's own certificate on every call. --no-mux bypasses it.");
    app.add_flag("--no-mux", no_mux_, "Dial agents directly even if a mux is running");

    // Footers are set last: CLI11 copies the parent's footer into subcommands
    // made after it. The selector grammar goes where a TARGET is taken.
    const std::string target_help = std::string("\n") + kSelectorHelp + "\n\n" + kExitHelp +
                                    "\n\nInventory: -i FILE, else $HERD_INVENTORY, else "
                                    "~/.config/herd/inventory.yaml. See README.md.";
    app.footer(target_help);
    for (auto* sub : {ping, facts, health, copy, inv, targets, audit, revoke, renew}) {
      sub->footer(target_help);
    }
    run->footer(run->get_footer() + "\n" + target_help);

    for (auto* sub : app.get_subcommands({})) {
      sub->fallthrough();
      for (auto* nested : sub->get_subcommands({})) nested->fallthrough();
    }

    try {
      app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
      if (e.get_exit_code() == 0) return app.exit(e);  // --help, --version
      return ParseFailure(app, *run, e, argc, argv);
    }

    if (*ca_init) return CaInit();
    if (*cert_issue) return CertIssue();
    auto* cert_revoke = cert->get_subcommand_ptr("revoke").get();
    if (*cert_revoke) {
      // Pushing the list needs an admin identity: check before changing the
      // folder's list, so a refused push leaves nothing half done.
      if (!target_.empty() && !plaintext_) {
        auto id = hc::LoadIdentity(hc::ResolvePkiDir(pki_dir_), identity_);
        if (!id.ok()) return Fail(id.status().message());
        auto info = herd::pki::InspectCert(id->cert_pem);
        if (!info.ok() || !info->role || *info->role != herd::pki::Role::kAdmin) {
          return Fail("pushing revocations needs an admin identity; '" + identity_ +
                      "' is not one (nothing was revoked)");
        }
      }
      auto list = hc::RevokeCert(hc::ResolvePkiDir(pki_dir_), cert_name_);
      if (!list.ok()) return Fail(list.status().message());
      std::fprintf(stderr, "herd: %s revoked; the list holds %zu serial(s)\n", cert_name_.c_str(),
                   list->size());
      if (target_.empty()) {
        std::fprintf(stderr, "herd: push it to agents with: herd cert revoke %s TARGET\n",
                     cert_name_.c_str());
        return 0;
      }
    }
    if (*enroll) return Enroll();
    if (*cert_list) return CertList();
    if (*mux_start) return MuxStart();
    if (*mux_stop || *mux_status) {
      const std::string sock = hc::MuxSocketPath(hc::ResolvePkiDir(pki_dir_), identity_);
      const int pid = hc::MuxPid(sock);
      if (*mux_status) {
        std::printf(pid ? "mux for %s: running (pid %d) at %s\n" : "mux for %s: not running\n",
                    identity_.c_str(), pid, sock.c_str());
        return pid ? 0 : 3;
      }
      if (!pid) return Fail("no mux is running for identity " + identity_);
      ::kill(pid, SIGTERM);
      for (int i = 0; i < 100 && hc::MuxPid(sock) != 0; ++i) ::usleep(100'000);
      if (hc::MuxPid(sock) != 0)
        return Fail("the mux (pid " + std::to_string(pid) + ") did not stop");
      std::printf("mux for %s: stopped\n", identity_.c_str());
      return 0;
    }
    if (*cert_agent) {
      auto f = hc::IssueAgentCert(hc::ResolvePkiDir(pki_dir_), cert_name_, days_ ? days_ : 365,
                                  out_dir_);
      if (!f.ok()) return Fail(f.status().message());
      return PrintIssued("issued agent certificate for", *f);
    }

    for (auto* sub : {ping, run, facts, health, copy, inv, targets, audit, cert_revoke, renew}) {
      if (sub->count("target")) given_target_ = true;
    }
    auto path = hc::ResolveInventoryPath(g_.inventory);
    auto inventory = hc::LoadInventory(path);
    if (!inventory.ok()) return Fail(inventory.status().message());
    // Only inventory and targets default to all, and only when TARGET is
    // omitted: an empty string (an unset variable) must never mean "everything".
    if (target_.empty()) {
      if ((*inv || *targets) && !given_target_) {
        target_ = "all";
      } else {
        return Fail("TARGET is empty; say 'all' to mean every host");
      }
    }
    auto hosts = hc::SelectHosts(*inventory, target_, g_.allow_empty);
    if (!hosts.ok()) return Fail(hosts.status().message());

    if (*inv) return ListInventory(*hosts);
    if (*targets) return WriteTargets(*hosts);

    std::chrono::milliseconds timeout{(*run || *copy) ? 60'000 : 10'000};
    if (!g_.timeout.empty()) {
      auto t = herd::ParseDuration(g_.timeout);
      if (!t.ok()) return Fail("--timeout: " + t.status().message());
      if (t->count() <= 0) return Fail("--timeout must be positive");
      if (*t > std::chrono::hours(24)) return Fail("--timeout must be at most 24h");
      timeout = *t;
    }

    hc::HostTask task;
    size_t collect = 0;
    if (*ping) task = hc::PingTask();
    if (*facts) task = hc::FactsTask();
    if (*health) task = hc::HealthTask();
    if (*run) {
      if (command_.empty() == shell_.empty()) {
        return Fail("run needs either a command after -- or --shell 'pipeline' (not both)");
      }
      herd::v1::ExecRequest req;
      for (const auto& a : command_) req.add_argv(a);
      req.set_shell(shell_);
      for (const auto& kv : env_) {
        auto eq = kv.find('=');
        if (eq == std::string::npos || eq == 0)
          return Fail("--env expects KEY=VALUE, got '" + kv + "'");
        (*req.mutable_env())[kv.substr(0, eq)] = kv.substr(eq + 1);
      }
      req.set_working_dir(cwd_);
      req.set_timeout_ms(hc::AgentTimeoutMs(timeout));
      if (max_output_ < 1 || max_output_ > (64u << 20)) {
        return Fail("--max-output must be between 1 and 67108864 bytes (64 MiB)");
      }
      req.set_max_output_bytes(max_output_);
      task = hc::ExecTask(std::move(req));
      collect = max_output_;
    }
    if (*audit) {
      auto back = herd::ParseDuration(since_);
      if (!back.ok()) return Fail("--since: " + back.status().message());
      const auto now = std::chrono::duration_cast<std::chrono::seconds>(
                           std::chrono::system_clock::now().time_since_epoch())
                           .count();
      task = hc::AuditTask(now - std::chrono::duration_cast<std::chrono::seconds>(*back).count(),
                           10000);
      collect = 16 << 20;
    }
    if (*renew) {
      auto fleet_ca = hc::LoadFleetCa(hc::ResolvePkiDir(pki_dir_));
      if (!fleet_ca.ok()) return Fail(fleet_ca.status().message());
      task = hc::RenewTask(std::move(*fleet_ca), days_ ? days_ : 365);
    }
    if (*cert_revoke) task = hc::RevocationsTask(hc::RevokedSerials(hc::ResolvePkiDir(pki_dir_)));
    if (*copy) {
      if (dst_.empty() || dst_[0] != '/') return Fail("copy: DST must be an absolute path");
      auto source = hc::ReadCopySource(src_);
      if (!source.ok()) return Fail(source.status().message());
      if (!mode_.empty()) {
        char* end = nullptr;
        unsigned long m = std::strtoul(mode_.c_str(), &end, 8);
        if (*end || m > 07777) return Fail("--mode expects octal permission bits, e.g. 0644");
        source->mode = static_cast<uint32_t>(m);
      }
      task = hc::CopyTask(std::move(*source), dst_);
    }

    herd::InitGrpcRuntime(GrpcDebugLog());
    RaiseFdLimit();
    ::signal(SIGINT, OnSigint);
    ::signal(SIGPIPE, SIG_IGN);

    hc::OutputOptions out;
    out.format = g_.output == "json" ? hc::OutputFormat::kJson
                 : g_.fold           ? hc::OutputFormat::kFold
                                     : hc::OutputFormat::kText;
    out.progress = !g_.no_progress && ::isatty(STDERR_FILENO);
    out.summary = !g_.quiet;
    auto reporter = hc::MakeReporter(out);

    hc::FanOutOptions fo;
    fo.forks = g_.forks;
    fo.timeout = timeout;
    fo.interrupted = &g_interrupted;
    fo.collect_output_bytes = out.format == hc::OutputFormat::kText ? 0 : collect;
    hc::TransportOptions transport;
    if (plaintext_) {
      transport.plaintext = true;
    } else {
      auto id = hc::LoadIdentity(hc::ResolvePkiDir(pki_dir_), identity_);
      if (!id.ok()) return Fail(id.status().message());
      transport = std::move(*id);
    }
    // A running mux for this identity saves a TLS handshake per host.
    const std::string mux_socket = hc::MuxSocketPath(hc::ResolvePkiDir(pki_dir_), identity_);
    auto factory = !plaintext_ && !no_mux_ && hc::MuxPid(mux_socket) != 0
                       ? hc::MakeMuxClientFactory(mux_socket)
                       : hc::MakeGrpcClientFactory(transport);
    hc::FanOut engine(*factory, fo);
    auto results = engine.Run(*hosts, task, *reporter);
    return static_cast<int>(hc::ComputeExitCode(results));
  }

 private:
  int PrintIssued(const char* what, const hc::IssuedFiles& f) {
    const std::string until = herd::UtcDate(f.info.not_after);
    if (g_.output == "json") {
      nlohmann::json j = {{"name", f.info.common_name},
                          {"key", f.key_path},
                          {"cert", f.cert_path},
                          {"serial", f.info.serial},
                          {"not_after", until}};
      if (f.info.role) j["role"] = herd::pki::RoleName(*f.info.role);
      std::printf("%s\n", j.dump().c_str());
    } else {
      std::printf("%s '%s'%s, valid until %s\n  key:  %s (0600)\n  cert: %s\n", what,
                  f.info.common_name.c_str(),
                  f.info.role
                      ? (std::string(" with role ") + herd::pki::RoleName(*f.info.role)).c_str()
                      : "",
                  until.c_str(), f.key_path.c_str(), f.cert_path.c_str());
    }
    return 0;
  }

  int CaInit() {
    auto f = hc::InitFleetCa(hc::ResolvePkiDir(pki_dir_), ca_name_, days_ ? days_ : 3650);
    if (!f.ok()) return Fail(f.status().message());
    return PrintIssued("created fleet CA", *f);
  }

  int CertIssue() {
    auto role = herd::pki::ParseRole(role_);
    if (!role.ok()) return Fail(role.status().message());
    auto f = hc::IssueClientCert(hc::ResolvePkiDir(pki_dir_), cert_name_, *role,
                                 days_ ? days_ : 365, out_dir_);
    if (!f.ok()) return Fail(f.status().message());
    return PrintIssued("issued certificate for", *f);
  }

  int Enroll() {
    hc::EnrollRequest req = enroll_;
    if (!enroll_token_file_.empty()) {
      auto t = herd::ReadFileToString(enroll_token_file_);
      if (!t.ok()) return Fail("--token-file: " + t.status().message());
      req.token = *t;
      while (!req.token.empty() && std::isspace(static_cast<unsigned char>(req.token.back()))) {
        req.token.pop_back();
      }
    }
    if (req.token.empty())
      return Fail("enroll needs the join token: --token-file FILE, $HERD_JOIN_TOKEN or --token");
    auto address = hc::NormaliseAddress(req.address);
    if (!address.ok()) return Fail("enroll: " + address.status().message());
    req.address = *address;
    req.days = days_ ? days_ : 365;
    hc::Host host{req.name, req.address, {}, ""};
    if (!enroll_metrics_.empty()) {
      auto m = hc::NormaliseAddress(enroll_metrics_, hc::kDefaultMetricsPort);
      if (!m.ok()) return Fail("--metrics: " + m.status().message());
      host.metrics = *m;
    }
    for (const auto& kv : enroll_labels_) {
      auto eq = kv.find('=');
      if (eq == std::string::npos || eq == 0) return Fail("--labels expects k=v, got '" + kv + "'");
      host.labels[kv.substr(0, eq)] = kv.substr(eq + 1);
    }
    const std::string pki_dir = hc::ResolvePkiDir(pki_dir_);
    auto fleet_ca = hc::LoadFleetCa(pki_dir);
    if (!fleet_ca.ok()) return Fail(fleet_ca.status().message());
    // Check the inventory before touching the device: a name clash found
    // afterwards would leave an enrolled agent nobody can address.
    const std::string inv_path = hc::ResolveInventoryPath(g_.inventory);
    if (!no_inventory_) {
      struct stat st {};
      if (::stat(inv_path.c_str(), &st) == 0) {
        auto inv = hc::LoadInventory(inv_path);
        if (!inv.ok()) return Fail(inv.status().message());
        if (const hc::Host* h = inv->FindHost(req.name); h && h->address != req.address) {
          return Fail(inv_path + " already has a host named " + req.name + " at " + h->address +
                      "; choose another --name");
        }
      }
      if (herd::Status s = hc::CheckInventoryWritable(inv_path); !s.ok()) {
        return Fail(s.message() + " (nothing was enrolled; -i FILE or --no-inventory)");
      }
    }
    herd::InitGrpcRuntime(GrpcDebugLog());
    auto res = hc::EnrollAgent(req, *fleet_ca);
    if (!res.ok()) {
      std::fprintf(stderr, "herd: error: %s\n", res.status().message().c_str());
      return static_cast<int>(res.status().code() == herd::StatusCode::kUnavailable
                                  ? ExitCode::kHostUnreachable
                                  : ExitCode::kHostFailed);
    }
    std::string inventory_note = "not added to the inventory (--no-inventory)";
    if (!no_inventory_) {
      herd::Status s = hc::AddHostToInventoryFile(inv_path, host);
      if (s.code() == herd::StatusCode::kAlreadyExists) {
        inventory_note = "already in " + inv_path;
      } else if (!s.ok()) {
        return Fail("enrolled, but the inventory was not updated: " + s.message());
      } else {
        inventory_note = "added to " + inv_path;
      }
    }
    std::string serving = "not waited for (--no-wait)";
    if (!no_wait_) {
      auto id = hc::LoadIdentity(pki_dir, identity_);
      if (!id.ok()) {
        serving = "not checked (no identity '" + identity_ + "' to check with)";
      } else {
        herd::Status s =
            hc::WaitForMtls(req.address, req.name, *id,
                            std::chrono::seconds(res->reload_seconds) + std::chrono::seconds(15));
        if (!s.ok()) return Fail(s.message());
        serving = "serving mTLS";
      }
    }
    const std::string until = herd::UtcDate(res->cert.not_after);
    if (g_.output == "json") {
      nlohmann::json j = {{"host", req.name},           {"address", req.address},
                          {"serial", res->cert.serial}, {"not_after", until},
                          {"hostname", res->hostname},  {"inventory", inventory_note},
                          {"status", serving}};
      std::printf("%s\n", j.dump().c_str());
    } else {
      std::printf("enrolled %s at %s (device %s): certificate %s valid until %s; %s; %s\n",
                  req.name.c_str(), req.address.c_str(), res->hostname.c_str(),
                  res->cert.serial.c_str(), until.c_str(), inventory_note.c_str(), serving.c_str());
    }
    return 0;
  }

  int CertList() {
    const std::string dir = hc::ResolvePkiDir(pki_dir_);
    auto ids = hc::ListIdentities(dir);
    if (!ids.ok()) return Fail(ids.status().message());
    const std::time_t now = std::time(nullptr);
    for (const auto& id : *ids) {
      const std::string until = herd::UtcDate(id.info.not_after);
      const char* role = id.info.is_ca  ? "CA"
                         : id.info.role ? herd::pki::RoleName(*id.info.role)
                                        : "-";
      const char* state = id.revoked                             ? "revoked"
                          : id.info.not_after < now              ? "expired"
                          : id.info.not_after < now + 30 * 86400 ? "expires soon"
                                                                 : "valid";
      if (g_.output == "json") {
        nlohmann::json j = {{"name", id.name},    {"role", role},   {"serial", id.info.serial},
                            {"not_after", until}, {"state", state}, {"cert", id.cert_path}};
        std::printf("%s\n", j.dump().c_str());
      } else {
        std::printf("%-16s %-9s %-13s until %s  %s\n", id.name.c_str(), role, state, until.c_str(),
                    id.info.serial.c_str());
      }
    }
    return 0;
  }

  int MuxStart() {
    if (plaintext_) return Fail("the mux holds mTLS connections; it has no use with --plaintext");
    std::chrono::milliseconds idle{10 * 60 * 1000};
    if (!mux_idle_.empty()) {
      auto d = herd::ParseDuration(mux_idle_);
      if (!d.ok()) return Fail("--idle: expects a duration such as 30m, got '" + mux_idle_ + "'");
      if (d->count() <= 0) return Fail("--idle must be more than zero, e.g. 30m");
      idle = *d;
    }
    const std::string pki_dir = hc::ResolvePkiDir(pki_dir_);
    auto id = hc::LoadIdentity(pki_dir, identity_);
    if (!id.ok()) return Fail(id.status().message());
    hc::MuxOptions opts{hc::MuxSocketPath(pki_dir, identity_), std::move(*id), idle};
    if (int pid = hc::MuxPid(opts.socket_path)) {
      std::printf("mux for %s: already running (pid %d)\n", identity_.c_str(), pid);
      return 0;
    }
    if (mux_foreground_) {
      ::signal(SIGINT, OnSigint);
      ::signal(SIGTERM, OnSigint);
      herd::InitGrpcRuntime(GrpcDebugLog());
      std::fprintf(stderr, "herd: mux for %s at %s (Ctrl-C stops)\n", identity_.c_str(),
                   opts.socket_path.c_str());
      auto s = hc::RunMux(opts, &g_interrupted);
      return s.ok() ? 0 : Fail(s.message());
    }
    // Background: a child in its own session, detached from the terminal.
    const pid_t child = ::fork();
    if (child < 0) return Fail(std::string("cannot fork: ") + std::strerror(errno));
    if (child == 0) {
      ::setsid();
      int null = ::open("/dev/null", O_RDWR);
      if (null >= 0) {
        ::dup2(null, 0);
        ::dup2(null, 1);
        ::dup2(null, 2);
        if (null > 2) ::close(null);
      }
      ::signal(SIGTERM, OnSigint);
      ::signal(SIGINT, SIG_IGN);
      ::signal(SIGHUP, SIG_IGN);
      herd::InitGrpcRuntime();
      ::_exit(hc::RunMux(opts, &g_interrupted).ok() ? 0 : 1);
    }
    for (int i = 0; i < 100 && hc::MuxPid(opts.socket_path) == 0; ++i) ::usleep(100'000);
    const int pid = hc::MuxPid(opts.socket_path);
    if (!pid) return Fail("the mux did not start (socket " + opts.socket_path + ")");
    std::printf("mux for %s: running (pid %d) at %s; exits after %s without calls\n",
                identity_.c_str(), pid, opts.socket_path.c_str(),
                herd::FormatDuration(idle).c_str());
    return 0;
  }

  int ListInventory(const std::vector<const hc::Host*>& hosts) {
    for (const auto* h : hosts) {
      if (g_.output == "json") {
        nlohmann::json j = {{"name", h->name},
                            {"address", h->address},
                            {"metrics", h->metrics},
                            {"labels", h->labels}};
        std::printf("%s\n", j.dump().c_str());
      } else {
        std::string labels;
        for (const auto& [k, v] : h->labels) labels += (labels.empty() ? "" : " ") + k + "=" + v;
        std::printf("%-16s %-22s %s\n", h->name.c_str(), h->address.c_str(), labels.c_str());
      }
    }
    return 0;
  }

  int WriteTargets(const std::vector<const hc::Host*>& hosts) {
    std::string text = hc::FileSdTargets(hosts).dump(2) + "\n";
    if (write_.empty()) {
      std::fputs(text.c_str(), stdout);
      return 0;
    }
    // Atomic, through a fresh temporary name, so Prometheus never reads half a file.
    if (herd::Status st = herd::WriteFileAtomic(write_, text, 0644); !st.ok()) {
      return Fail(st.message());
    }
    std::fprintf(stderr, "herd: wrote %zu targets to %s\n", hosts.size(), write_.c_str());
    return 0;
  }

  Globals g_;
  std::string target_;
  std::vector<std::string> command_;
  std::string shell_;
  std::vector<std::string> env_;
  std::string cwd_;
  size_t max_output_ = 1 << 20;
  std::string src_, dst_, mode_;
  std::string write_;
  std::string pki_dir_, ca_name_ = "herd fleet CA", cert_name_, role_, out_dir_;
  int days_ = 0;
  bool given_target_ = false;
  std::string since_ = "24h";
  std::string identity_ = "admin";
  bool plaintext_ = false;
  hc::EnrollRequest enroll_;
  std::vector<std::string> enroll_labels_;
  std::string enroll_metrics_, enroll_token_file_;
  std::string mux_idle_;
  bool mux_foreground_ = false, no_mux_ = false;
  bool no_inventory_ = false, no_wait_ = false;
};

}  // namespace

int main(int argc, char** argv) {
  Cli cli;
  return cli.Main(argc, argv);
}

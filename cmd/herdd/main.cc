// herdd: the herd agent. Loads its config, applies flag overrides, serves
// until SIGTERM or SIGINT, then stops what it started. SIGHUP restarts it in
// place (same pid, same ports): what a first enrolment asks for, so that the
// fleet certificate is served at once.
#include <malloc.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "agent/config.h"
#include "agent/logging.h"
#include "agent/server.h"
#include "agent/startup_pages.h"
#include "common/key_value.h"
#include "proto/rpc/grpc_runtime.h"

int main(int argc, char** argv) {
  // One malloc arena for every thread: the agent allocates little, and each
  // extra arena holds pages of its own (about 0.3 MB of idle RSS).
  // MALLOC_ARENA_MAX in the environment still wins.
  if (std::getenv("MALLOC_ARENA_MAX") == nullptr) mallopt(M_ARENA_MAX, 1);
  CLI::App app{"herdd: the herd agent. Serves gRPC management and Prometheus metrics.", "herdd"};
  app.set_version_flag("--version", std::string("herdd ") + HERD_VERSION);
  std::string config_path, listen, metrics_listen, state_dir, name, ready_file, log_format,
      log_level;
  std::vector<std::string> labels;
  std::string tls_dir, tls_ca, tls_cert, tls_key;
  bool plaintext = false, allow_root = false;
  std::string run_as;
  app.add_option("-c,--config", config_path, "YAML config file (see configs/agent.yaml)")
      ->envname("HERDD_CONFIG");
  // The last one wins: a restart in place appends the ports already bound.
  const std::string grpc_default = herd::agent::AgentConfig().listen;
  const std::string metrics_default = herd::agent::AgentConfig().metrics_listen;
  app.add_option("--listen", listen,
                 "gRPC address host:port (port 0 picks one; default " + grpc_default + ")")
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  app.add_option(
         "--metrics-listen", metrics_listen,
         "Prometheus /metrics address host:port (default " + metrics_default + "; \"\" disables)")
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  app.add_option("--state-dir", state_dir, "State directory (default /var/lib/herd)")
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  app.add_option("--name", name, "Fleet name of this device");
  app.add_option("-l,--label", labels, "Label KEY=VALUE (repeatable; adds to the config's)");
  app.add_option("--ready-file", ready_file,
                 "Write grpc=, metrics=, pid= lines here once both ports are bound");
  app.add_option("--tls-dir", tls_dir,
                 "Folder with ca.crt, agent.crt, agent.key (herd cert agent NAME --out DIR)");
  app.add_option("--tls-ca", tls_ca, "Fleet CA certificate (PEM) that signs clients");
  app.add_option("--tls-cert", tls_cert, "This agent's certificate (PEM)");
  app.add_option("--tls-key", tls_key, "This agent's private key (PEM)");
  app.add_flag("--plaintext", plaintext,
               "Serve without TLS, every caller admin (development; loopback addresses only)");
  app.add_option("--run-as", run_as,
                 "Account commands run as and uploads are written as (default herd-run)");
  app.add_flag("--allow-root", allow_root,
               "Let operators ask for root (herd run --root, herd copy --root)");
  app.add_option("--log-format", log_format, "text (default) or json");
  app.add_option("--log-level", log_level, "trace, debug, info (default), warn, error");
  app.footer(
      "A new device starts in enrolment mode: without TLS files it makes its own key and a\n"
      "one-time join token (STATE_DIR/join-token, 0600) and only answers enrolment. On the\n"
      "operator's machine:\n"
      "  herd enroll HOST:PORT --name NAME --token-file COPY_OF_JOIN_TOKEN\n"
      "signs its certificate with the fleet CA; from then on it serves mTLS only.\n\n"
      "Example (loopback, development):\n"
      "  herdd --state-dir /tmp/herdd1 --listen " +
      grpc_default + " --metrics-listen " + metrics_default +
      "\n\n"
      "Flags override the config file. Stops cleanly on SIGTERM/SIGINT, killing the "
      "commands it started;\nSIGHUP restarts it in place (same pid and ports) to serve new "
      "TLS files at once. See docs/security.md.");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 1;
  }

  herd::agent::AgentConfig config;
  if (!config_path.empty()) {
    auto loaded = herd::agent::LoadAgentConfig(config_path);
    if (!loaded.ok()) {
      std::fprintf(stderr, "herdd: %s\n", loaded.status().message().c_str());
      return 1;
    }
    config = std::move(*loaded);
  }
  if (!listen.empty()) config.listen = listen;
  if (app.count("--metrics-listen")) config.metrics_listen = metrics_listen;  // "" disables
  if (!state_dir.empty()) config.state_dir = state_dir;
  if (!name.empty()) config.name = name;
  if (!ready_file.empty()) config.ready_file = ready_file;
  if (!log_format.empty()) config.log_format = log_format;
  if (!log_level.empty()) config.log_level = log_level;
  if (!tls_dir.empty()) {
    config.tls = herd::TlsFilesIn(tls_dir);
  }
  if (!tls_ca.empty()) config.tls.ca = tls_ca;
  if (!tls_cert.empty()) config.tls.cert = tls_cert;
  if (!tls_key.empty()) config.tls.key = tls_key;
  if (plaintext) config.plaintext = true;
  if (!run_as.empty()) config.exec.run_as = run_as;
  if (allow_root) config.exec.allow_root = true;
  for (const auto& text : labels) {
    auto kv = herd::ParseKeyValue(text);
    if (!kv.ok()) {
      std::fprintf(stderr, "herdd: --label %s\n", kv.status().message().c_str());
      return 1;
    }
    config.labels[kv->first] = kv->second;
  }
  if (auto s = herd::agent::ValidateAgentConfig(
          config, config_path.empty() ? std::string("command line") : config_path);
      !s.ok()) {
    std::fprintf(stderr, "herdd: %s\n", s.message().c_str());
    return 1;
  }
  if (auto s = herd::agent::SetupLogging(config.log_format, config.log_level); !s.ok()) {
    std::fprintf(stderr, "herdd: %s\n", s.message().c_str());
    return 1;
  }

  // Before any thread exists: the process that ends herdd's commands if
  // herdd dies (kill -9 included).
  auto guardian = herd::agent::Guardian::Start();
  if (!guardian.ok()) {
    std::fprintf(stderr, "herdd: %s\n", guardian.status().message().c_str());
    return 1;
  }

  // Signals are taken synchronously by this thread; every thread started
  // from here on inherits the blocked mask (children get it reset).
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGTERM);
  sigaddset(&stop, SIGINT);
  sigaddset(&stop, SIGHUP);  // restart in place (sent by a first enrolment)
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);
  ::signal(SIGPIPE, SIG_IGN);

  // gRPC's own lines (mostly failed handshakes of refused callers) go to the
  // debug level: what matters about a call is audited and logged by herdd.
  herd::rpc::InitGrpcRuntime([](int severity, const std::string& msg) {
    spdlog::log(severity == 2 ? spdlog::level::debug : spdlog::level::trace, "grpc: {}", msg);
  });
  herd::agent::AgentServer server(config, guardian->get());
  if (auto s = server.Start(); !s.ok()) {
    spdlog::error("{}", s.message());
    return 1;
  }
  // Start-up is over: its code pages need not stay mapped (about 2 MB of RSS).
  if (auto released = herd::agent::ReleaseStartupPages(); released.ok()) {
    spdlog::debug("released {} KB of start-up pages", *released / 1024);
  } else {
    spdlog::debug("start-up pages kept: {}", released.status().message());
  }
  int sig = 0;
  sigwait(&stop, &sig);
  if (sig == SIGHUP) {
    // The same command line with the ports it has bound, so a port 0 stays
    // the port the fleet knows; the new image re-reads config and TLS files.
    std::vector<std::string> args(argv, argv + argc);
    args.insert(args.end(), {"--listen", server.grpc_address()});
    if (!server.metrics_address().empty()) {
      args.insert(args.end(), {"--metrics-listen", server.metrics_address()});
    }
    spdlog::info("received SIGHUP: restarting in place to serve the current TLS files");
    server.Shutdown();
    std::vector<char*> cargs;
    for (auto& a : args) cargs.push_back(a.data());
    cargs.push_back(nullptr);
    // By its path, so the process keeps its name (/proc/self/exe would make it "exe").
    char self[4096];
    const ssize_t n = ::readlink("/proc/self/exe", self, sizeof self - 1);
    const std::string path = n > 0 ? std::string(self, static_cast<size_t>(n)) : "/proc/self/exe";
    ::execv(path.c_str(), cargs.data());
    spdlog::error("cannot restart: exec {}: {}", path, std::strerror(errno));
    return 1;
  }
  spdlog::info("received {}", sig == SIGTERM ? "SIGTERM" : "SIGINT");
  server.Shutdown();
  return 0;
}

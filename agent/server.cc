#include "agent/server.h"

#include <fcntl.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/security/tls_certificate_provider.h>
#include <grpcpp/security/tls_credentials_options.h>
#include <netdb.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "agent/agent_context.h"
#include "agent/agent_service.h"
#include "agent/apps/activation.h"
#include "agent/apps/app_db.h"
#include "agent/apps/app_service.h"
#include "agent/apps/supervisor.h"
#include "agent/exec/exec_runner.h"
#include "agent/files/file_writer.h"
#include "agent/host/host_info.h"
#include "agent/host/metrics.h"
#include "agent/security/audit_log.h"
#include "agent/security/authz.h"
#include "agent/security/enrollment.h"
#include "common/file.h"
#include "common/method_name.h"
#include "proto/rpc/call_queue.h"

namespace herd::agent {
namespace {

// The one place where the agent's transport credentials are chosen: mTLS with
// the device key and the certificate files re-read every tls_reload (so a
// renewed certificate is served without a restart), or plain text on loopback
// when explicitly asked for. Client certificates are requested but verified by
// the Authorizer, so that a refused certificate is an audited answer instead
// of a silent handshake failure.
Result<std::shared_ptr<grpc::ServerCredentials>> ServerCredentials(const AgentConfig& c) {
  if (c.plaintext) {
    if (!IsLoopbackAddress(c.listen)) {
      return Status::Invalid("refusing plain-text gRPC on " + c.listen +
                             ": without TLS herdd only listens on loopback (127.0.0.0/8, ::1)");
    }
    spdlog::warn("plain-text gRPC on {}: no authentication, every caller is admin", c.listen);
    return grpc::InsecureServerCredentials();
  }
  const auto reload = std::chrono::duration_cast<std::chrono::seconds>(c.tls_reload).count();
  auto provider = std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(
      c.tls.key, c.tls.cert, static_cast<unsigned>(std::max<long long>(1, reload)));
  grpc::experimental::TlsServerCredentialsOptions opts(provider);
  opts.watch_identity_key_cert_pairs();
  opts.set_cert_request_type(GRPC_SSL_REQUEST_CLIENT_CERTIFICATE_BUT_DONT_VERIFY);
  return grpc::experimental::TlsServerCredentials(opts);
}

// Counts every finished call in herd_grpc_requests_total, by short name.
class RpcMetrics final : public rpc::RpcObserver {
 public:
  explicit RpcMetrics(AgentMetrics& m) : m_(m) {}
  void OnRpcFinished(std::string_view method, grpc::StatusCode code) override {
    m_.RecordRpc(ShortMethodName(method), static_cast<int>(code));
  }

 private:
  AgentMetrics& m_;
};

std::string HostPart(const std::string& address) { return address.substr(0, address.rfind(':')); }

// Why HOST:PORT cannot be bound, in the kernel's words ("Address already in
// use"), or "" when it can. gRPC only says that it failed.
std::string BindError(const std::string& address) {
  std::string host = HostPart(address);
  const std::string port = address.substr(address.rfind(':') + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* res = nullptr;
  if (int rc = ::getaddrinfo(host.empty() ? nullptr : host.c_str(), port.c_str(), &hints, &res);
      rc != 0) {
    return ::gai_strerror(rc);
  }
  std::string err;
  const int fd = ::socket(res->ai_family, res->ai_socktype | SOCK_CLOEXEC, res->ai_protocol);
  if (fd < 0) {
    err = std::strerror(errno);
  } else {
    const int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);  // as gRPC does
    if (::bind(fd, res->ai_addr, res->ai_addrlen) != 0) err = std::strerror(errno);
    ::close(fd);
  }
  ::freeaddrinfo(res);
  return err;
}

}  // namespace

struct AgentServer::Impl {
  Impl(AgentConfig c, Guardian* guardian)
      : config(std::move(c)),
        runner(config.exec.max_concurrent, ProcessLauncher::Real(), guardian),
        metrics(config.state_dir),
        audit(config.state_dir),
        rpc_metrics(metrics) {
    audit.OnWriteError([this] { metrics.RecordAuditWriteError(); });
  }
  AgentConfig config;
  ExecRunner runner;
  AgentMetrics metrics;
  AuditLog audit;
  RpcMetrics rpc_metrics;
  std::unique_ptr<Enrollment> enrollment;
  std::unique_ptr<Authorizer> authz;
  Account run_as, agent_account;
  std::unique_ptr<AgentContext> context;  // what the services' calls share
  std::unique_ptr<LabelStore> labels;     // operators' labels (herd apply)
  std::unique_ptr<AppStore> apps;
  std::unique_ptr<AppDb> app_db;
  std::unique_ptr<Supervisor> supervisor;
  std::unique_ptr<Activator> activator;
  std::unique_ptr<rpc::Server> server;
  int lock_fd = -1;  // flock on <state_dir>/herdd.lock, held while running
  ~Impl() {
    if (lock_fd >= 0) ::close(lock_fd);
  }
};

AgentServer::AgentServer(AgentConfig config, Guardian* guardian)
    : impl_(std::make_unique<Impl>(std::move(config), guardian)) {}
AgentServer::~AgentServer() { Shutdown(); }

Status AgentServer::ResolveAccounts() {
  const AgentConfig& c = impl_->config;
  impl_->agent_account = AgentAccount();
  if (::geteuid() != 0) {
    impl_->run_as = impl_->agent_account;
    if (c.exec.run_as != impl_->agent_account.name) {
      spdlog::warn(
          "herdd is not root: commands run as its own user {}, not {} (exec.run_as), and "
          "can read what herdd can",
          impl_->agent_account.name, c.exec.run_as);
    }
    return Status::Ok();
  }
  auto account = LookupAccount(c.exec.run_as);
  if (!account.ok()) {
    return Status(StatusCode::kFailedPrecondition,
                  "exec.run_as: " + account.status().message() +
                      " (scripts/install-deps.sh creates herd-run; or name another account)");
  }
  impl_->run_as = std::move(*account);
  if (impl_->run_as.is_root()) {
    spdlog::warn("exec.run_as is {}: every command runs as root", impl_->run_as.name);
  }
  return Status::Ok();
}

Status AgentServer::Start() {
  const AgentConfig& c = impl_->config;
  if (::mkdir(c.state_dir.c_str(), 0700) != 0 && errno != EEXIST) {
    return Status::Internal("cannot create state dir " + c.state_dir + ": " + std::strerror(errno));
  }
  struct stat st {};
  if (::stat(c.state_dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    return Status::Invalid("state dir " + c.state_dir + " is not a directory");
  }
  if (::access(c.state_dir.c_str(), W_OK) != 0) {
    return Status::Internal("state dir " + c.state_dir +
                            " is not writable: " + std::strerror(errno));
  }
  // Keys, tokens and the audit trail: nobody else's business.
  if ((st.st_mode & 077) != 0 && st.st_uid == ::geteuid() &&
      ::chmod(c.state_dir.c_str(), 0700) == 0) {
    spdlog::warn("state dir {} was open to other users (mode {:04o}): now 0700", c.state_dir,
                 st.st_mode & 07777);
  }
  if (Status s = ResolveAccounts(); !s.ok()) return s;
  // One herdd per state dir: two would share the join token and the audit
  // log's rotation. The lock goes with the process (and with a restart's exec).
  impl_->lock_fd =
      ::open((c.state_dir + "/herdd.lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (impl_->lock_fd < 0 || ::flock(impl_->lock_fd, LOCK_EX | LOCK_NB) != 0) {
    return Status(StatusCode::kAlreadyExists,
                  "state dir " + c.state_dir + " is in use by another herdd (" +
                      (impl_->lock_fd < 0 ? std::strerror(errno) : "herdd.lock is held") + ")");
  }
  // Both ports are checked before anything is written to the state dir.
  if (std::string e = BindError(c.listen); !e.empty()) {
    return Status(StatusCode::kUnavailable, "cannot listen for gRPC on " + c.listen + ": " + e);
  }
  if (std::string e = c.metrics_listen.empty() ? "" : BindError(c.metrics_listen); !e.empty()) {
    return Status(StatusCode::kUnavailable,
                  "cannot serve metrics on " + c.metrics_listen + ": " + e);
  }
  // Uploads a killed herdd left half done: their temporaries go.
  const std::string notes = UploadNotesDir(c);
  if (::mkdir(notes.c_str(), 0700) != 0 && errno != EEXIST) {
    return Status::Internal("cannot create " + notes + ": " + std::strerror(errno));
  }
  if (int left = RemoveLeftTemporaries(notes); left > 0) {
    spdlog::info("removed {} temporary file(s) of uploads cut short by an earlier herdd", left);
  }
  impl_->apps =
      std::make_unique<AppStore>(c.apps, c.apps.dir.empty() ? c.state_dir + "-apps" : c.apps.dir);
  if (Status s = impl_->apps->Open(); !s.ok()) return s;
  if (Status s = StartApps(); !s.ok()) return s;
  if (!c.plaintext) {
    if (impl_->config.tls.empty()) {
      impl_->config.tls = TlsFilesIn(c.state_dir + "/tls");
      if (::mkdir((c.state_dir + "/tls").c_str(), 0700) != 0 && errno != EEXIST) {
        return Status::Internal("cannot create " + c.state_dir + "/tls: " + std::strerror(errno));
      }
    }
    const std::string token_file =
        c.enroll.token_file.empty() ? c.state_dir + "/join-token" : c.enroll.token_file;
    auto e =
        Enrollment::Open(c.tls, c.enroll.token, token_file, c.name.empty() ? HostName() : c.name);
    if (!e.ok()) return e.status();
    impl_->enrollment = std::move(*e);
    if (!impl_->enrollment->enrolled()) {
      if (!impl_->enrollment->new_token().empty() && ::isatty(STDERR_FILENO)) {
        // Shown once, on a terminal only: logs never carry the token.
        std::fprintf(stderr, "herdd: join token for this device: %s\n",
                     impl_->enrollment->new_token().c_str());
      }
      spdlog::warn(
          "not enrolled in a fleet: waiting for 'herd enroll ADDRESS --token-file FILE --name "
          "NAME' (token in {})",
          c.enroll.token.empty() ? token_file : std::string("the config"));
    }
  }
  impl_->authz = std::make_unique<Authorizer>(impl_->enrollment.get(), c.state_dir, impl_->audit);
  if (Status s = impl_->authz->LoadRevoked(); !s.ok()) return s;
  if (Status s = BuildGrpc(); !s.ok()) return s;
  if (!c.metrics_listen.empty()) {
    auto port = impl_->metrics.Serve(c.metrics_listen);
    if (!port.ok()) return port.status();
    metrics_address_ = HostPart(c.metrics_listen) + ":" + std::to_string(*port);
  }
  spdlog::info("herdd {} serving gRPC ({}) on {}, metrics on {}, state in {}", HERD_VERSION,
               c.plaintext                     ? "plain text"
               : impl_->enrollment->enrolled() ? "mTLS"
                                               : "TLS, enrolment only",
               grpc_address_, metrics_address_.empty() ? "(disabled)" : metrics_address_,
               c.state_dir);
  if (!c.ready_file.empty()) {
    Status s =
        WriteFileAtomic(c.ready_file, "grpc=" + grpc_address_ + "\nmetrics=" + metrics_address_ +
                                          "\npid=" + std::to_string(::getpid()) + "\n");
    if (!s.ok()) return s;
  }
  return Status::Ok();
}

// The apps' state, their supervisor (taking over the apps still running)
// and the recovery of activations a killed herdd left.
Status AgentServer::StartApps() {
  auto db = AppDb::Open(impl_->apps->dir() + "/state.db");
  if (!db.ok()) return db.status();
  impl_->app_db = std::move(*db);
  impl_->supervisor = std::make_unique<Supervisor>(impl_->config.apps, *impl_->apps, *impl_->app_db,
                                                   ProcessLauncher::Real());
  AgentMetrics& metrics = impl_->metrics;
  impl_->activator = std::make_unique<Activator>(
      impl_->config.apps, *impl_->apps, *impl_->app_db, *impl_->supervisor,
      [&metrics](const ActivationOutcome& o) {
        metrics.RecordActivation(o.record.app, o.record.outcome, o.duration_ms / 1000.0,
                                 o.record.rollout);
      });
  impl_->supervisor->Open(impl_->activator->Unfinished());
  impl_->activator->Recover();
  impl_->metrics.WatchApps([sup = impl_->supervisor.get()] {
    std::vector<AppSample> out;
    for (const auto& i : sup->List()) {
      AppSample a;
      a.name = i.name;
      a.version = i.version;
      a.sequence = i.running;
      a.up = i.running != 0 && i.health.state == "okay";
      a.restarts = i.restarts;
      a.rss_bytes = i.rss_bytes;
      a.cpu_seconds = i.cpu_seconds;
      a.health_failures = i.failures_by_reason;
      a.limits = i.limits;
      out.push_back(std::move(a));
    }
    return out;
  });
  return Status::Ok();
}

// An app that should run is healthy, or the agent's health says why not.
std::function<std::vector<Check>()> AgentServer::AppChecks() {
  return [this] {
    std::vector<Check> out;
    for (const auto& r : impl_->app_db->Apps()) {
      if (!r.enabled) continue;
      const auto i = impl_->supervisor->Info(r.name);
      Check c;
      c.name = "app " + r.name;
      c.ok = i && i->running != 0 && i->health.state == "okay";
      c.detail = !i ? "not supervised"
                    : i->version + " " + (i->running ? "running" : "not running") + ", " +
                          i->health.state + " (" + i->health.reason + ")";
      out.push_back(std::move(c));
    }
    return out;
  };
}

// The gRPC server with the configured credentials on `listen` (port 0 picks one).
Status AgentServer::BuildGrpc() {
  const AgentConfig& c = impl_->config;
  auto creds = ServerCredentials(c);
  if (!creds.ok()) return creds.status();
  // Once a first enrolment's reply is sent, herdd restarts in place with the
  // fleet certificate (SIGHUP to its main thread, which owns the server).
  impl_->context.reset(new AgentContext{
      c, impl_->runner, impl_->metrics, *impl_->authz, impl_->audit, impl_->enrollment.get(),
      impl_->run_as, impl_->agent_account, [] { ::kill(::getpid(), SIGHUP); }, AppChecks()});
  if (!impl_->labels) impl_->labels = std::make_unique<LabelStore>(c.state_dir);
  impl_->context->labels = impl_->labels.get();
  impl_->server = std::make_unique<rpc::Server>(&impl_->rpc_metrics);

  // One line per service.
  impl_->server->Add(std::make_unique<AgentService>(*impl_->context));
  impl_->server->Add(std::make_unique<AppService>(*impl_->context, *impl_->apps, *impl_->app_db,
                                                  *impl_->supervisor, *impl_->activator));

  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(c.listen, *creds, &port);
  builder.SetMaxReceiveMessageSize(4 << 20);
  // Per-connection bookkeeping herdd doesn't use: channelz nodes and BDP pings.
  builder.AddChannelArgument(GRPC_ARG_ENABLE_CHANNELZ, 0);
  // A second herdd on the same port must fail, not share it.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_BDP_PROBE, 0);
  // Calls of a client that vanished (no FIN, no RST: a machine gone) end:
  // its connection is pinged and closed when it stays silent.
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS,
                             static_cast<int>(c.grpc.keepalive.count()));
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS,
                             static_cast<int>(c.grpc.keepalive_timeout.count()));
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
  if (Status s = impl_->server->Start(builder); !s.ok() || port == 0) {
    return Status(StatusCode::kUnavailable, "cannot listen for gRPC on " + c.listen);
  }
  grpc_address_ = HostPart(c.listen) + ":" + std::to_string(port);
  return Status::Ok();
}

void AgentServer::Shutdown() {
  if (!impl_->server) return;
  spdlog::info("shutting down: stopping {} running command(s)", impl_->runner.running());
  impl_->runner.KillAll();
  // Activations in progress stay recorded (the next start reverts them);
  // apps keep running and the next herdd takes them over.
  if (impl_->activator) impl_->activator->Shutdown();
  if (impl_->supervisor) impl_->supervisor->Shutdown();
  impl_->server->Shutdown(std::chrono::seconds(2));
  impl_->server.reset();
  spdlog::info("stopped");
}

}  // namespace herd::agent

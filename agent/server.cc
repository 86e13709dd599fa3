#include "agent/server.h"

#include <grpcpp/grpcpp.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "agent/audit_log.h"
#include "agent/authz.h"
#include "agent/exec_runner.h"
#include "agent/metrics.h"
#include "agent/service.h"
#include "common/file.h"

namespace herd::agent {
namespace {

Result<std::string> ReadPem(const std::string& path, const char* what) {
  auto pem = ReadFileToString(path);
  if (!pem.ok())
    return Status::NotFound(std::string("TLS ") + what + ": " + pem.status().message());
  return pem;
}

// The one place where the agent's transport credentials are chosen: mTLS with
// the fleet CA, or plain text on loopback when explicitly asked for. Client
// certificates are requested but verified by the Authorizer, so that a refused
// certificate is an audited answer instead of a silent handshake failure.
Result<std::shared_ptr<grpc::ServerCredentials>> ServerCredentials(const AgentConfig& c,
                                                                   std::string* ca_pem) {
  if (c.plaintext) {
    if (!IsLoopbackAddress(c.listen)) {
      return Status::Invalid("refusing plain-text gRPC on " + c.listen +
                             ": without TLS herdd only listens on loopback (127.0.0.0/8, ::1)");
    }
    spdlog::warn("plain-text gRPC on {}: no authentication, every caller is admin", c.listen);
    return grpc::InsecureServerCredentials();
  }
  if (!c.tls.complete()) {
    return Status::Invalid(
        "no TLS credentials: give --tls-dir (ca.crt, agent.crt, agent.key from "
        "'herd cert agent NAME --out DIR') or tls: in the config; --plaintext is for loopback "
        "development only");
  }
  auto ca = ReadPem(c.tls.ca, "CA");
  if (!ca.ok()) return ca.status();
  auto cert = ReadPem(c.tls.cert, "certificate");
  if (!cert.ok()) return cert.status();
  auto key = ReadPem(c.tls.key, "key");
  if (!key.ok()) return key.status();
  grpc::SslServerCredentialsOptions opts(GRPC_SSL_REQUEST_CLIENT_CERTIFICATE_BUT_DONT_VERIFY);
  opts.pem_root_certs = *ca;
  opts.pem_key_cert_pairs.push_back({*key, *cert});
  *ca_pem = *ca;
  return grpc::SslServerCredentials(opts);
}

std::string HostPart(const std::string& address) { return address.substr(0, address.rfind(':')); }

Status WriteReadyFile(const std::string& path, const std::string& body) {
  std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::trunc);
    f << body;
    if (!f.flush()) return Status::Internal("cannot write " + tmp + ": " + std::strerror(errno));
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    return Status::Internal("cannot rename " + tmp + ": " + std::strerror(errno));
  }
  return Status::Ok();
}

}  // namespace

struct AgentServer::Impl {
  explicit Impl(AgentConfig c)
      : config(std::move(c)),
        runner(config.exec.max_concurrent),
        metrics(config.state_dir),
        audit(config.state_dir) {}
  AgentConfig config;
  ExecRunner runner;
  AgentMetrics metrics;
  AuditLog audit;
  std::unique_ptr<Authorizer> authz;
  std::unique_ptr<AgentService> service;
  std::unique_ptr<grpc::Server> server;
};

AgentServer::AgentServer(AgentConfig config) : impl_(std::make_unique<Impl>(std::move(config))) {}
AgentServer::~AgentServer() { Shutdown(); }

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
  std::string ca_pem;
  auto creds = ServerCredentials(c, &ca_pem);
  if (!creds.ok()) return creds.status();
  impl_->authz = std::make_unique<Authorizer>(ca_pem, c.state_dir + "/revoked", impl_->audit);
  impl_->service =
      std::make_unique<AgentService>(c, impl_->runner, impl_->metrics, *impl_->authz, impl_->audit);
  grpc::ServerBuilder builder;
  builder.AddListeningPort(c.listen, *creds, &grpc_port_);
  builder.RegisterService(impl_->service.get());
  builder.SetMaxReceiveMessageSize(4 << 20);
  // Per-connection bookkeeping herdd doesn't use: channelz nodes and BDP pings.
  builder.AddChannelArgument(GRPC_ARG_ENABLE_CHANNELZ, 0);
  // A second herdd on the same port must fail, not share it.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_BDP_PROBE, 0);
  std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> icpt;
  icpt.push_back(impl_->metrics.InterceptorFactory());
  builder.experimental().SetInterceptorCreators(std::move(icpt));
  impl_->server = builder.BuildAndStart();
  if (!impl_->server || grpc_port_ == 0) {
    return Status(StatusCode::kUnavailable, "cannot listen for gRPC on " + c.listen);
  }
  std::string metrics_addr;
  if (!c.metrics_listen.empty()) {
    auto port = impl_->metrics.Serve(c.metrics_listen);
    if (!port.ok()) return port.status();
    metrics_port_ = *port;
    metrics_addr = HostPart(c.metrics_listen) + ":" + std::to_string(metrics_port_);
  }
  std::string grpc_addr = HostPart(c.listen) + ":" + std::to_string(grpc_port_);
  spdlog::info("herdd {} serving gRPC ({}) on {}, metrics on {}, state in {}", HERD_VERSION,
               c.plaintext ? "plain text" : "mTLS", grpc_addr,
               metrics_addr.empty() ? "(disabled)" : metrics_addr, c.state_dir);
  if (!c.ready_file.empty()) {
    Status s = WriteReadyFile(c.ready_file, "grpc=" + grpc_addr + "\nmetrics=" + metrics_addr +
                                                "\npid=" + std::to_string(::getpid()) + "\n");
    if (!s.ok()) return s;
  }
  return Status::Ok();
}

void AgentServer::Shutdown() {
  if (!impl_->server) return;
  spdlog::info("shutting down: stopping {} running command(s)", impl_->runner.running());
  impl_->runner.KillAll();
  impl_->server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  impl_->server.reset();
  spdlog::info("stopped");
}

}  // namespace herd::agent

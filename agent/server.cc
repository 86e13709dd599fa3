#include "agent/server.h"

#include <grpcpp/grpcpp.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>

#include "agent/exec_runner.h"
#include "agent/metrics.h"
#include "agent/service.h"

namespace herd::agent {
namespace {

// The one place where the agent's transport credentials are chosen. mTLS
// plugs in here.
std::shared_ptr<grpc::ServerCredentials> ServerCredentials(const AgentConfig&) {
  return grpc::InsecureServerCredentials();
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
        service(config, runner, metrics) {}
  AgentConfig config;
  ExecRunner runner;
  AgentMetrics metrics;
  AgentService service;
  std::unique_ptr<grpc::Server> server;
};

AgentServer::AgentServer(AgentConfig config) : impl_(std::make_unique<Impl>(std::move(config))) {}
AgentServer::~AgentServer() { Shutdown(); }

Status AgentServer::Start() {
  const AgentConfig& c = impl_->config;
  if (::mkdir(c.state_dir.c_str(), 0700) != 0 && errno != EEXIST) {
    return Status::Internal("cannot create state dir " + c.state_dir + ": " + std::strerror(errno));
  }
  if (::access(c.state_dir.c_str(), W_OK) != 0) {
    return Status::Internal("state dir " + c.state_dir +
                            " is not writable: " + std::strerror(errno));
  }
  grpc::ServerBuilder builder;
  builder.AddListeningPort(c.listen, ServerCredentials(c), &grpc_port_);
  builder.RegisterService(&impl_->service);
  builder.SetMaxReceiveMessageSize(4 << 20);
  // Per-connection bookkeeping herdd doesn't use: channelz nodes and BDP pings.
  builder.AddChannelArgument(GRPC_ARG_ENABLE_CHANNELZ, 0);
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
  spdlog::info("herdd {} serving gRPC on {}, metrics on {}, state in {}", HERD_VERSION, grpc_addr,
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

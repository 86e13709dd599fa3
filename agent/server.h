// AgentServer: owns everything a running herdd has: the gRPC server, the
// metrics endpoint, the exec runner. Start() binds both ports and writes the
// ready file; Shutdown() kills running commands and stops serving.
// Start/Shutdown are called from main's thread only.
#pragma once

#include <memory>

#include "agent/config.h"
#include "common/status.h"

namespace herd::agent {

class AgentServer {
 public:
  explicit AgentServer(AgentConfig config);
  ~AgentServer();

  Status Start();
  void Shutdown();
  int grpc_port() const { return grpc_port_; }
  int metrics_port() const { return metrics_port_; }

 private:
  Status BuildGrpc(const std::string& address);

  struct Impl;
  std::unique_ptr<Impl> impl_;
  int grpc_port_ = 0, metrics_port_ = 0;
};

}  // namespace herd::agent

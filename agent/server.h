// AgentServer: owns everything a running herdd has: the gRPC server, the
// metrics endpoint, the exec runner. Start() binds both ports and writes the
// ready file; Shutdown() kills running commands and stops serving.
// Start/Shutdown are called from main's thread only.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "agent/config.h"
#include "agent/exec/guardian.h"
#include "agent/host/host_info.h"
#include "common/status.h"

namespace herd::agent {

class AgentServer {
 public:
  // `guardian` (optional, owned by main) ends the commands if herdd dies.
  explicit AgentServer(AgentConfig config, Guardian* guardian = nullptr);
  ~AgentServer();

  Status Start();
  void Shutdown();
  // The addresses bound by Start() ("127.0.0.1:41234"; metrics "" when disabled).
  const std::string& grpc_address() const { return grpc_address_; }
  const std::string& metrics_address() const { return metrics_address_; }

 private:
  Status BuildGrpc();
  Status ResolveAccounts();  // exec.run_as and the agent's own account
  Status StartApps();
  std::function<std::vector<Check>()> AppChecks();

  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::string grpc_address_, metrics_address_;
};

}  // namespace herd::agent

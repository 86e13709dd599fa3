// AgentClients over gRPC: one channel per host dialled directly, or every
// host's calls over one local connection to a running `herd mux`
// (control/mux.h). Calls go through gRPC's generic stub and callback API:
// requests are sent as the serialised bytes the operation carries (made
// once for every host), replies handed back as bytes.
#pragma once

#include <memory>
#include <string>

#include "control/agent_client.h"
#include "proto/rpc/identity.h"

namespace herd::control {

// Credentials are made once and shared by every host's channel.
std::unique_ptr<AgentClientFactory> MakeGrpcClientFactory(const rpc::TransportOptions& opts);

// Clients whose calls the mux at `socket_path` forwards to each agent; the
// agent's address and name ride in each call's metadata.
std::unique_ptr<AgentClientFactory> MakeMuxClientFactory(const std::string& socket_path);

}  // namespace herd::control

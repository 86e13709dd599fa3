// gRPC helpers shared by control/'s gRPC code (never by the fan-out engine,
// which sees only AgentClient). Defined in grpc_agent_client.cc.
#pragma once

#include <grpcpp/grpcpp.h>

#include <string>

#include "common/status.h"

namespace herd::control {

// The one place where a gRPC status becomes a herd Status.
Status FromGrpc(const grpc::Status& s);

// A channel target for host:port; IP literals skip the DNS resolver.
std::string ChannelTarget(const std::string& address);

}  // namespace herd::control

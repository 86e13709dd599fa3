// gRPC helpers shared by control/'s gRPC code (never by the fan-out engine,
// which sees only AgentClient). Defined in grpc_agent_client.cc.
#pragma once

#include <grpcpp/grpcpp.h>

#include <string>

#include "common/status.h"
#include "control/agent_client.h"

namespace herd::control {

// The one place where a gRPC status becomes a herd Status.
Status FromGrpc(const grpc::Status& s);

// A channel target for host:port; IP literals skip the DNS resolver.
std::string ChannelTarget(const std::string& address);

// The one place where transport credentials are made (mTLS with the caller's
// identity, or plain text), once per process and shared by every channel.
std::shared_ptr<grpc::ChannelCredentials> MakeCredentials(const TransportOptions& opts);

// One agent's channel: `name` is what its certificate must carry.
std::shared_ptr<grpc::Channel> MakeChannel(const std::string& address, const std::string& name,
                                           const std::shared_ptr<grpc::ChannelCredentials>& creds,
                                           bool tls);

// Call metadata naming the agent a mux should forward a call to.
inline constexpr const char* kMuxAddressKey = "herd-agent-address";
inline constexpr const char* kMuxNameKey = "herd-agent-name";

}  // namespace herd::control

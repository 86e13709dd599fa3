// The client side of herd's gRPC transport, shared by everything that dials:
// the CLI's agent client, the mux, enrolment, later agent-to-agent peers.
// Credentials (mTLS with an identity from a PKI folder, TLS without server
// verification for enrolment, plain text) and channels are made here and
// nowhere else. Stateless functions; safe from any thread.
#pragma once

#include <grpcpp/channel.h>
#include <grpcpp/security/credentials.h>

#include <memory>
#include <string>

#include "common/status.h"
#include "proto/rpc/identity.h"

namespace herd::rpc {

// mTLS with the caller's identity, or plain text. Made once per process and
// shared by every channel.
std::shared_ptr<grpc::ChannelCredentials> MakeCredentials(const TransportOptions& opts);

// TLS that accepts any server certificate: for enrolment only, where the
// join-token proof is what authenticates the agent.
std::shared_ptr<grpc::ChannelCredentials> EnrolmentCredentials();

// A channel target for host:port; IP literals skip the DNS resolver (and its
// executor hop, a measurable share of per-host cost at 1000s of hosts).
std::string ChannelTarget(const std::string& address);

struct ChannelSpec {
  // host:port, or "unix:PATH" for a local socket.
  std::string address;
  // The name the peer's certificate must carry (agents' certificates name
  // them, not their IPs); "" checks the address, as for plain text.
  std::string tls_name;
  // Each host its own connection: no subchannel sharing through the global
  // pool (it only adds locking at 1000s of hosts).
  bool own_subchannel_pool = true;
  // HTTP/2 BDP probing grows flow-control windows for bulk transfer; off for
  // agent connections (a ping per connection for little gain), left on for
  // the local socket to the mux, which carries every host's output.
  bool bdp_probe = false;
};

// The one channel set-up: retries off (a fan-out never repeats a call on its
// own), 64 MiB messages, no channelz or BDP pings, reconnect backoff capped
// at 1 s (a peer that returns is reached within about a second).
std::shared_ptr<grpc::Channel> MakeChannel(const ChannelSpec& spec,
                                           const std::shared_ptr<grpc::ChannelCredentials>& creds);

}  // namespace herd::rpc

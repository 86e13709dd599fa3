// A typed gRPC stub to a real agent, for integration tests that must act as
// a client herd never is (raw requests, forged lists, stalled streams).
#pragma once

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <memory>
#include <string>

#include "herd/v1/agent.grpc.pb.h"
#include "herd/v1/app.grpc.pb.h"
#include "proto/rpc/transport.h"
#include "tests/support/test_support.h"

namespace herd::testing {

// mTLS as `identity` of `pki_dir` (default: the test PKI's admin), checking
// the agent's certificate against its name.
inline std::shared_ptr<grpc::Channel> AgentChannel(const AgentProcess& agent,
                                                   const std::string& identity = "admin",
                                                   const std::string& pki_dir = TestPkiDir()) {
  auto id = rpc::LoadIdentity(pki_dir, identity);
  if (!id.ok()) throw std::runtime_error(id.status().message());
  rpc::ChannelSpec spec;
  spec.address = agent.grpc_address();
  spec.tls_name = agent.name();
  return rpc::MakeChannel(spec, rpc::MakeCredentials(*id));
}

inline std::unique_ptr<v1::Agent::Stub> AgentStub(const AgentProcess& agent,
                                                  const std::string& identity = "admin",
                                                  const std::string& pki_dir = TestPkiDir()) {
  return v1::Agent::NewStub(AgentChannel(agent, identity, pki_dir));
}

// herd.v1.Apps on the same terms.
inline std::unique_ptr<v1::Apps::Stub> AppsStub(const AgentProcess& agent,
                                                const std::string& identity = "admin",
                                                const std::string& pki_dir = TestPkiDir()) {
  return v1::Apps::NewStub(AgentChannel(agent, identity, pki_dir));
}

// A client context with a deadline `limit` from now.
inline std::unique_ptr<grpc::ClientContext> CallContext(
    std::chrono::milliseconds limit = std::chrono::seconds(10)) {
  auto ctx = std::make_unique<grpc::ClientContext>();
  ctx->set_deadline(std::chrono::system_clock::now() + limit);
  return ctx;
}

}  // namespace herd::testing

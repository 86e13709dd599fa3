// AgentClient: one host's management API, asynchronous, behind a herd
// interface so the fan-out engine never sees gRPC (and so relays or fakes can
// stand in for it).
//
// Callback contract: every method calls `done` exactly once, on an arbitrary
// thread owned by the transport (never the caller's thread re-entrantly), and
// never after the client is destroyed... callers keep the client alive until
// `done` has fired. `on_output` callbacks of one call are serialised and all
// happen before that call's `done`. Callbacks must not block.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include "common/status.h"
#include "herd/v1/agent.pb.h"

namespace herd::control {

struct CallOptions {
  std::chrono::system_clock::time_point deadline;
};

// Error Statuses use kUnavailable for "could not reach the agent",
// kDeadlineExceeded for "no complete answer in time"; anything else means the
// agent answered with an error.
class AgentClient {
 public:
  virtual ~AgentClient() = default;

  template <typename T>
  using Done = std::function<void(Result<T>)>;

  virtual void Info(const CallOptions& opts, Done<v1::InfoReply> done) = 0;
  virtual void Facts(const CallOptions& opts, Done<v1::FactsReply> done) = 0;
  virtual void Health(const CallOptions& opts, Done<v1::HealthReply> done) = 0;
  // `answered` in the result is implied: if any ExecEvent arrived before an
  // error, the error Status message is prefixed with "answered: ".
  virtual void Exec(const v1::ExecRequest& req, const CallOptions& opts,
                    std::function<void(const v1::ExecEvent&)> on_output,
                    Done<v1::ExecResult> done) = 0;
  // Streams `content` (shared, not copied) in chunks after `header`.
  virtual void PutFile(const v1::PutFileHeader& header, std::shared_ptr<const std::string> content,
                       const CallOptions& opts, Done<v1::PutFileReply> done) = 0;
  virtual void ReadAudit(const v1::ReadAuditRequest& req, const CallOptions& opts,
                         Done<v1::ReadAuditReply> done) = 0;
  virtual void SetRevocations(const v1::SetRevocationsRequest& req, const CallOptions& opts,
                              Done<v1::SetRevocationsReply> done) = 0;
  virtual void BeginEnroll(const v1::BeginEnrollRequest& req, const CallOptions& opts,
                           Done<v1::BeginEnrollReply> done) = 0;
  virtual void CompleteEnroll(const v1::CompleteEnrollRequest& req, const CallOptions& opts,
                              Done<v1::CompleteEnrollReply> done) = 0;
  // Best-effort cancel of every call in flight; their `done` still fires.
  virtual void CancelAll() = 0;
};

// Settings for how the CLI reaches agents. Security (mTLS) plugs in here and
// nowhere else.
struct TransportOptions {
  bool plaintext = false;         // development only: agents started with --plaintext
  std::string ca_pem;             // fleet CA: agents must present a certificate it signed
  std::string cert_pem, key_pem;  // this caller's identity (its role is inside the cert)
};

// Loads the identity NAME (NAME.crt, NAME.key) and ca.crt from a PKI folder.
Result<TransportOptions> LoadIdentity(const std::string& pki_dir, const std::string& name);

class AgentClientFactory {
 public:
  virtual ~AgentClientFactory() = default;
  // `name` is the host's fleet name: the agent's certificate must carry it.
  virtual std::unique_ptr<AgentClient> Connect(const std::string& address,
                                               const std::string& name) = 0;
};

std::unique_ptr<AgentClientFactory> MakeGrpcClientFactory(const TransportOptions& opts);
// Clients that reach agents through a running `herd mux` (control/mux.h).
std::unique_ptr<AgentClientFactory> MakeMuxClientFactory(const std::string& socket_path);

}  // namespace herd::control

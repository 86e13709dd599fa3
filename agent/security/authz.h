// Authorizer: who may call what on this agent. Every call is checked here
// first, by its full method name ("/herd.v1.Agent/Exec"), against the
// policies the services registered beside their method lists
// (agent/agent_service.cc); a method without a policy is refused, whoever
// calls (fail closed). Verifies the client certificate against the fleet CA
// itself (so a refused certificate is an answered, audited call rather than
// a silent handshake failure), checks the revocation list, then the role.
// Denials are written to the audit log. gRPC-free: the services hand over the
// peer's address and certificate.
//
// Threads: Allow() before the server starts; everything else from any thread.
#pragma once

#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "agent/security/audit_log.h"
#include "agent/security/enrollment.h"
#include "common/pki.h"
#include "common/revocation_list.h"
#include "common/status.h"

namespace herd::agent {

struct Caller {
  std::string name;  // certificate common name, or "plaintext:<peer>"
  pki::Role role = pki::Role::kViewer;
  std::string serial;
  bool join_token = false;  // a not-yet-enrolled agent's enrolment call: the token decides
};

// Who may call one method.
struct MethodPolicy {
  std::string_view method;  // full name, "/herd.v1.Agent/Exec"
  pki::Role role;           // the least role that may call it
  // Answered by an agent that is not enrolled yet, authorised by its join
  // token (the enrolment calls); refused there for everything else.
  bool enrolment = false;
};

class Authorizer {
 public:
  // `enrollment` null means plain-text mode (loopback development only):
  // every caller is admin and recorded by its peer address. Otherwise the
  // fleet CA comes from `enrollment`; until the agent is enrolled only the
  // enrolment calls are answered.
  // The revocation list lives in `state_dir` (revocations: signed; revoked:
  // the unsigned list of agents from before signed lists).
  Authorizer(const Enrollment* enrollment, const std::string& state_dir, AuditLog& audit);

  // Registers a service's policies. Before the server starts.
  void Allow(const std::vector<MethodPolicy>& policies);
  // The policy of `method`, or null: then every call of it is refused.
  const MethodPolicy* PolicyFor(std::string_view method) const;

  // kOk with the caller, or UNAUTHENTICATED / PERMISSION_DENIED /
  // FAILED_PRECONDITION (audited). `peer` is the caller's address as gRPC
  // names it, `cert_pem` the client certificate it presented ("" for none).
  Result<Caller> Check(std::string_view peer, std::string_view cert_pem, std::string_view method);

  // Reads the signed list (checked against the fleet CA once enrolled), or
  // else the old unsigned one (one serial per line; case, spaces, CR and
  // separators do not matter) as version 0. A file that exists but cannot be
  // read, does not verify, or holds a line that is not a serial, is an error
  // naming file and line: never an empty list.
  Status LoadRevoked();
  // `serial` in any usual spelling (leading zeros, ':' separators, case).
  bool IsRevoked(const std::string& serial);
  uint64_t revocation_version();

  struct Installed {
    bool installed = false;  // false: it had this version already
    uint64_t version = 0;
    size_t count = 0;
  };
  // Takes a signed list from any caller: only if it verifies against the
  // fleet CA and is newer than the list held (the same version again
  // changes nothing). Persisted before it takes effect.
  Result<Installed> InstallRevocations(const std::string& text);

 private:
  Status Deny(const Caller& who, std::string_view method, StatusCode code, const std::string& msg);
  const Enrollment* const enrollment_;
  const std::string signed_path_, legacy_path_;
  AuditLog& audit_;
  std::map<std::string, MethodPolicy, std::less<>> policies_;  // written before serving only
  std::mutex install_mu_;                                      // one InstallRevocations at a time
  std::mutex mu_;                                              // guards the four below
  std::map<std::string, pki::CertInfo> verified_;              // cert PEM hash -> info
  std::set<std::string> revoked_;                              // normalised serials
  uint64_t revocation_version_ = 0;
};

}  // namespace herd::agent

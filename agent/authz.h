// Authorizer: who may call what on this agent. Every RPC handler asks it
// first (AgentService::Authorize); the method -> role table lives here and
// nowhere else. Verifies the client certificate against the fleet CA itself
// (so a refused certificate is an answered, audited call rather than a silent
// handshake failure), checks the revocation list, then the role. Denials are
// written to the audit log. Thread-safe.
#pragma once

#include <grpcpp/grpcpp.h>

#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>

#include "agent/audit_log.h"
#include "agent/enrollment.h"
#include "common/pki.h"
#include "common/status.h"

namespace herd::agent {

struct Caller {
  std::string name;  // certificate common name, or "plaintext:<peer>"
  pki::Role role = pki::Role::kViewer;
  std::string serial;
  bool join_token = false;  // a not-yet-enrolled agent's enrolment call: the token decides
};

class Authorizer {
 public:
  // `enrollment` null means plain-text mode (loopback development only):
  // every caller is admin and recorded by its peer address. Otherwise the
  // fleet CA comes from `enrollment`; until the agent is enrolled only the
  // enrolment calls are answered.
  Authorizer(const Enrollment* enrollment, std::string revoked_path, AuditLog& audit);

  // The role a method needs; methods not in the table need admin.
  static pki::Role RequiredRole(const std::string& method);

  // kOk with the caller, or UNAUTHENTICATED / PERMISSION_DENIED (audited).
  Result<Caller> Check(const grpc::ServerContextBase& ctx, const std::string& method);

  // Reads `revoked_path` (one serial per line; case, spaces and CR do not
  // matter). A file that exists but cannot be read, or a line that is not a
  // serial, is an error naming file and line: never an empty list.
  Status LoadRevoked();
  bool IsRevoked(const std::string& serial);
  // A certificate serial as herd writes it: upper-case hex, 1 to 64 digits.
  static bool IsSerial(const std::string& s);
  // Replaces the revoked serial set (persisted to `revoked_path`).
  Status SetRevoked(const std::set<std::string>& serials);

 private:
  Status Deny(const Caller& who, const std::string& method, StatusCode code,
              const std::string& msg);
  const Enrollment* const enrollment_;
  const std::string revoked_path_;
  AuditLog& audit_;
  std::mutex mu_;                                  // guards verified_ and revoked_
  std::map<std::string, pki::CertInfo> verified_;  // cert PEM hash -> info
  std::set<std::string> revoked_;
};

}  // namespace herd::agent

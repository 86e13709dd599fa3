// What the calls of herdd's Agent service share: the agent's parts they act
// on (owned by AgentServer, which outlives the gRPC server), the method
// names, and the two steps every call starts with: who is calling, and the
// audit entry that records it. Used on the serving thread, the slow-work
// thread and the exec workers; every part is thread-safe.
#pragma once

#include <grpcpp/server_context.h>

#include <atomic>
#include <chrono>
#include <functional>

#include "agent/apply/label_store.h"
#include "agent/config.h"
#include "agent/exec/exec_runner.h"
#include "agent/host/host_info.h"
#include "agent/host/metrics.h"
#include "agent/security/account.h"
#include "agent/security/audit_log.h"
#include "agent/security/authz.h"
#include "agent/security/enrollment.h"
#include "proto/rpc/agent_methods.h"

namespace herd::agent {

struct AgentContext {
  const AgentConfig& config;
  ExecRunner& runner;
  AgentMetrics& metrics;
  Authorizer& authz;
  AuditLog& audit;
  Enrollment* enrollment;  // null in plain-text mode
  const Account& run_as;   // commands and uploads (exec.run_as)
  const Account& agent;    // the agent's own identity: root requests run as it
  // Runs once the reply of a first enrolment is sent (herdd restarts in place).
  std::function<void()> on_enrolled;
  // The apps' own checks for Health (one per app that should run).
  std::function<std::vector<Check>()> app_checks;
  std::chrono::steady_clock::time_point started = std::chrono::steady_clock::now();
  std::atomic<int> uploads{0};   // PutFile calls holding a temporary (config.files.max_concurrent)
  LabelStore* labels = nullptr;  // the labels operators gave (herd apply); set by the server
};

// The labels Info and Facts report: the owner's (agent config) over those
// operators gave.
std::map<std::string, std::string> DeviceLabels(const AgentContext& c);

// Where notes of the temporaries of uploads in progress are kept.
inline std::string UploadNotesDir(const AgentConfig& c) { return c.state_dir + "/uploads"; }

// The Agent service's method names: method::kExec is "/herd.v1.Agent/Exec".
namespace method = rpc::agent_method;

// The caller of `call`, or the refusal (already audited by the Authorizer).
// Also stamps the reply with the version of the revocation list this agent
// holds (trailing metadata), refused or not.
Result<Caller> Authorize(AgentContext& c, grpc::ServerContextBase& call, const char* method);

// The audit entry of `who` calling `method` (full name), without args and result.
AuditEntry EntryFor(const Caller& who, const char* method);

// The account a call acts as: exec.run_as, or the agent's own when it asks
// for root, which the device must allow (exec.allow_root) and the agent must
// be able to give. The refusal is kPermissionDenied or kFailedPrecondition.
Result<const Account*> ActingAccount(const AgentContext& c, bool root);

}  // namespace herd::agent

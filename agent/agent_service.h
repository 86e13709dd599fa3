// AgentService: herdd's management service, herd.v1.Agent. A thin adapter on
// the shared framework (proto/rpc/call_queue.h): it lists its methods with
// the role each needs, checks the caller, translates requests into calls on
// gRPC-free parts (ExecRunner, AtomicFileWriter, host facts, Enrollment,
// AuditLog) and finishes the call. Exec and PutFile have files of their own
// (exec_call.h, put_file_call.h).
//
// Threads: the unary handlers run on the serving thread, the slow ones
// (ReadAudit, SetRevocations, both enrolment calls: disk and crypto) on the
// slow-work thread. The serving thread still writes the audit line of a
// refused call (with its fsync) and a command's unsynced "started" line.
#pragma once

#include <vector>

#include "agent/agent_context.h"
#include "herd/v1/agent.grpc.pb.h"
#include "proto/rpc/call_queue.h"

namespace herd::agent {

class AgentService final : public rpc::Service {
 public:
  // Registers the service's policies with `c.authz`.
  explicit AgentService(AgentContext& c);

  void Register(grpc::ServerBuilder& builder) override;
  void Arm(rpc::CallQueue& queue) override;

  // Who may call each method of herd.v1.Agent; any other is refused.
  static const std::vector<MethodPolicy>& Policies();

 private:
  AgentContext& c_;
  v1::Agent::AsyncService async_;
};

}  // namespace herd::agent

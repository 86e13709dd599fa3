// AgentService: the herd.v1.Agent gRPC service. A thin adapter: validates
// requests, hands work to gRPC-free classes (ExecRunner, AtomicFileWriter,
// host_info) and finishes calls.
//
// Threads: one serving thread runs gRPC's completion queue (asynchronous
// API): it receives every call and does the network work, so a call costs no
// hand-off between gRPC's threads. Commands run on ExecRunner's workers,
// which write their output to the call themselves. Calls that may block on the
// disk or on crypto (PutFile's commit, ReadAudit, SetRevocations, enrolment)
// run on one slow-work thread, started at its first use, so that they do not
// hold up the serving thread. The serving thread still writes the audit line
// of a refused call (with its fsync) and a command's unsynced "started" line.
#pragma once

#include <grpcpp/server_builder.h>

#include <functional>
#include <memory>

#include "agent/audit_log.h"
#include "agent/authz.h"
#include "agent/config.h"
#include "agent/enrollment.h"
#include "agent/exec_runner.h"
#include "agent/metrics.h"

namespace herd::agent {

class AgentService {
 public:
  // `on_enrolled` runs once the reply of a first enrolment is sent.
  AgentService(const AgentConfig& config, ExecRunner& runner, AgentMetrics& metrics,
               Authorizer& authz, AuditLog& audit, Enrollment* enrollment,
               std::function<void()> on_enrolled = nullptr);
  ~AgentService();  // Stop()

  // Adds the service and its completion queue to `builder` (before BuildAndStart).
  void Register(grpc::ServerBuilder& builder);
  // Starts the serving thread (after BuildAndStart).
  void Start();
  // After the server's Shutdown: runs the slow work still queued, shuts the
  // completion queue down, drains it and joins. Idempotent.
  void Stop();

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

// The one mapping from herd::Status to grpc::Status on the agent side.
grpc::Status ToGrpc(const Status& s);

}  // namespace herd::agent

// AgentService: the herd.v1.Agent gRPC service. A thin adapter: validates
// requests, hands work to gRPC-free classes (ExecRunner, AtomicFileWriter,
// host_info) and finishes reactors. Commands run on ExecRunner's workers,
// never on gRPC threads. Thread-safe; one instance per server.
#pragma once

#include <functional>

#include "agent/audit_log.h"
#include "agent/authz.h"
#include "agent/config.h"
#include "agent/enrollment.h"
#include "agent/exec_runner.h"
#include "agent/metrics.h"
#include "herd/v1/agent.grpc.pb.h"

namespace herd::agent {

class AgentService final : public v1::Agent::CallbackService {
 public:
  // `on_enrolled` runs once the reply of a first enrolment is sent.
  AgentService(const AgentConfig& config, ExecRunner& runner, AgentMetrics& metrics,
               Authorizer& authz, AuditLog& audit, Enrollment* enrollment,
               std::function<void()> on_enrolled = nullptr);

  grpc::ServerUnaryReactor* Info(grpc::CallbackServerContext* ctx, const v1::InfoRequest* req,
                                 v1::InfoReply* reply) override;
  grpc::ServerUnaryReactor* Facts(grpc::CallbackServerContext* ctx, const v1::FactsRequest* req,
                                  v1::FactsReply* reply) override;
  grpc::ServerUnaryReactor* Health(grpc::CallbackServerContext* ctx, const v1::HealthRequest* req,
                                   v1::HealthReply* reply) override;
  grpc::ServerWriteReactor<v1::ExecEvent>* Exec(grpc::CallbackServerContext* ctx,
                                                const v1::ExecRequest* req) override;
  grpc::ServerReadReactor<v1::PutFileMessage>* PutFile(grpc::CallbackServerContext* ctx,
                                                       v1::PutFileReply* reply) override;
  grpc::ServerUnaryReactor* ReadAudit(grpc::CallbackServerContext* ctx,
                                      const v1::ReadAuditRequest* req,
                                      v1::ReadAuditReply* reply) override;
  grpc::ServerUnaryReactor* SetRevocations(grpc::CallbackServerContext* ctx,
                                           const v1::SetRevocationsRequest* req,
                                           v1::SetRevocationsReply* reply) override;
  grpc::ServerUnaryReactor* BeginEnroll(grpc::CallbackServerContext* ctx,
                                        const v1::BeginEnrollRequest* req,
                                        v1::BeginEnrollReply* reply) override;
  grpc::ServerUnaryReactor* CompleteEnroll(grpc::CallbackServerContext* ctx,
                                           const v1::CompleteEnrollRequest* req,
                                           v1::CompleteEnrollReply* reply) override;

 private:
  Result<Caller> CheckEnroll(grpc::CallbackServerContext* ctx, grpc::ServerUnaryReactor* reactor,
                             const char* method);

  const AgentConfig& config_;
  ExecRunner& runner_;
  AgentMetrics& metrics_;
  Authorizer& authz_;
  AuditLog& audit_;
  Enrollment* const enrollment_;  // null in plain-text mode
  const std::function<void()> on_enrolled_;
  const std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();
};

// The one mapping from herd::Status to grpc::Status on the agent side.
grpc::Status ToGrpc(const Status& s);

}  // namespace herd::agent

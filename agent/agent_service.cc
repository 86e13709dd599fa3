#include "agent/agent_service.h"

#include <spdlog/spdlog.h>

#include <set>

#include "agent/apply_call.h"
#include "agent/exec_call.h"
#include "agent/host/host_info.h"
#include "agent/put_file_call.h"
#include "common/method_name.h"
#include "proto/rpc/status_map.h"
#include "proto/rpc/unary_call.h"

namespace herd::agent {

Result<Caller> Authorize(AgentContext& c, grpc::ServerContextBase& call, const char* method) {
  // Every reply says which revocation list this agent holds, so that a
  // caller with a newer one can push it.
  call.AddTrailingMetadata(method::kRevocationVersionKey,
                           std::to_string(c.authz.revocation_version()));
  const rpc::Peer peer = rpc::PeerOf(call);
  return c.authz.Check(peer.address, peer.cert_pem, method);
}

AuditEntry EntryFor(const Caller& who, const char* method) {
  return {who.name, who.join_token ? "join-token" : pki::RoleName(who.role),
          std::string(ShortMethodName(method)), "", ""};
}

Result<const Account*> ActingAccount(const AgentContext& c, bool root) {
  if (!root) return &c.run_as;
  if (!c.config.exec.allow_root) {
    return Status(StatusCode::kPermissionDenied,
                  "this device does not allow root (exec.allow_root in its agent config)");
  }
  if (!c.agent.is_root()) {
    return Status(StatusCode::kFailedPrecondition,
                  "herdd does not run as root on this device: it cannot give root");
  }
  return &c.agent;
}

std::map<std::string, std::string> DeviceLabels(const AgentContext& c) {
  return c.labels ? c.labels->Merged(c.config.labels) : c.config.labels;
}

const std::vector<MethodPolicy>& AgentService::Policies() {
  using pki::Role;
  static const std::vector<MethodPolicy> kPolicies = {
      {method::kInfo, Role::kViewer},
      {method::kFacts, Role::kViewer},
      {method::kHealth, Role::kViewer},
      {method::kReadAudit, Role::kViewer},
      {method::kExec, Role::kOperator},
      {method::kPutFile, Role::kOperator},
      {method::kApply, Role::kOperator},
      // The list's signature by the fleet CA is its authority: any member of
      // the fleet may pass a newer one on (herd does, on any command).
      {method::kSetRevocations, Role::kViewer},
      // A fresh agent answers these with its join token; an enrolled one
      // from an admin (renewal).
      {method::kBeginEnroll, Role::kAdmin, true},
      {method::kCompleteEnroll, Role::kAdmin, true},
  };
  return kPolicies;
}

namespace {

template <class Req, class Rep>
using Call = rpc::UnaryCall<AgentContext, v1::Agent::AsyncService, Req, Rep>;
template <class Req, class Rep>
using Method = typename Call<Req, Rep>::Method;
using A = v1::Agent::AsyncService;

// Runs `fn` for an authorised caller; refusals are answered as they are.
template <class Call, class Fn>
grpc::Status Authorized(AgentContext& s, Call& call, Fn&& fn) {
  auto who = Authorize(s, call.ctx(), call.method());
  return who.ok() ? fn(*who) : rpc::ToGrpc(who.status());
}

grpc::Status Info(AgentContext& s, Call<v1::InfoRequest, v1::InfoReply>& call) {
  return Authorized(s, call, [&](const Caller&) {
    auto* reply = &call.reply;
    reply->set_hostname(HostName());
    reply->set_agent_version(HERD_VERSION);
    reply->set_name(s.config.name);
    reply->set_uptime_seconds(std::chrono::duration_cast<std::chrono::seconds>(
                                  std::chrono::steady_clock::now() - s.started)
                                  .count());
    for (const auto& [k, v] : DeviceLabels(s)) (*reply->mutable_labels())[k] = v;
    reply->set_revocation_version(s.authz.revocation_version());
    return grpc::Status::OK;
  });
}

grpc::Status Facts(AgentContext& s, Call<v1::FactsRequest, v1::FactsReply>& call) {
  return Authorized(s, call, [&](const Caller&) {
    auto* reply = &call.reply;
    HostFacts f = ReadHostFacts(s.config.state_dir);
    reply->set_hostname(f.hostname);
    reply->set_os(f.os);
    reply->set_kernel(f.kernel);
    reply->set_arch(f.arch);
    reply->set_cpus(f.cpus);
    reply->set_memory_total_bytes(f.mem_total);
    reply->set_memory_available_bytes(f.mem_available);
    reply->set_disk_total_bytes(f.disk_total);
    reply->set_disk_available_bytes(f.disk_available);
    reply->set_uptime_seconds(static_cast<int64_t>(f.uptime));
    reply->set_load1(f.load1);
    reply->set_agent_version(HERD_VERSION);
    reply->set_name(s.config.name);
    for (const auto& [k, v] : DeviceLabels(s)) (*reply->mutable_labels())[k] = v;
    return grpc::Status::OK;
  });
}

grpc::Status Health(AgentContext& s, Call<v1::HealthRequest, v1::HealthReply>& call) {
  return Authorized(s, call, [&](const Caller&) {
    bool ok = true;
    auto checks = RunHealthChecks(s.config.state_dir, s.config.health);
    if (s.app_checks) {
      auto apps = s.app_checks();
      checks.insert(checks.end(), apps.begin(), apps.end());
    }
    for (const auto& c : checks) {
      auto* hc = call.reply.add_checks();
      hc->set_name(c.name);
      hc->set_ok(c.ok);
      hc->set_detail(c.detail);
      ok = ok && c.ok;
    }
    call.reply.set_ok(ok);
    return grpc::Status::OK;
  });
}

grpc::Status ReadAudit(AgentContext& s, Call<v1::ReadAuditRequest, v1::ReadAuditReply>& call) {
  return Authorized(s, call, [&](const Caller&) {
    const auto& req = call.req;
    for (auto& e : s.audit.Read(req.since_unix(), req.limit() ? req.limit() : 1000)) {
      call.reply.add_entries(std::move(e));
    }
    return grpc::Status::OK;
  });
}

grpc::Status SetRevocations(AgentContext& s,
                            Call<v1::SetRevocationsRequest, v1::SetRevocationsReply>& call) {
  return Authorized(s, call, [&](const Caller& who) {
    AuditEntry e = EntryFor(who, call.method());
    Result<Authorizer::Installed> done =
        call.req.signed_list().empty()
            ? Result<Authorizer::Installed>(Status(
                  StatusCode::kFailedPrecondition,
                  "unsigned revocation lists are refused: this agent takes only a list signed "
                  "by the fleet CA (update herd)"))
            : s.authz.InstallRevocations(call.req.signed_list());
    if (!done.ok()) {
      e.result = "refused: " + done.status().message();
      (void)s.audit.AppendRefusal(e, who.serial);
      return rpc::ToGrpc(done.status());
    }
    e.args = "version " + std::to_string(done->version) + ", " + std::to_string(done->count) +
             " serials";
    e.result = "ok";
    // Only a change is on record: a list pushed again by every command is not.
    if (done->installed) {
      (void)s.audit.Append(e);
      spdlog::info("revocation list version {} ({} serials) installed from {}", done->version,
                   done->count, who.name);
    }
    call.reply.set_count(static_cast<uint32_t>(done->count));
    call.reply.set_version(done->version);
    call.reply.set_installed(done->installed);
    return grpc::Status::OK;
  });
}

// Audits an enrolment call's outcome (never the token, proofs or PEM bodies)
// and maps the status. Successes are audited when they change something.
grpc::Status FinishEnroll(AuditLog& audit, const Caller& who, const char* method,
                          const std::string& args, const Status& s, bool mutated) {
  AuditEntry e = EntryFor(who, method);
  e.args = args;
  e.result = s.ok() ? "ok" : "denied: " + s.message();
  if (!s.ok()) {
    (void)audit.AppendRefusal(std::move(e), who.join_token ? "" : who.serial);
  } else if (mutated) {
    (void)audit.Append(e);
  }
  return rpc::ToGrpc(s);
}

// The common start of both enrolment calls: authorisation, then the
// plain-text agent's refusal; `fn` runs for a caller that may go on.
template <class Call, class Fn>
grpc::Status Enrolling(AgentContext& s, Call& call, Fn&& fn) {
  return Authorized(s, call, [&](const Caller& who) {
    if (!s.enrollment) {
      Status refused(StatusCode::kFailedPrecondition,
                     "this agent serves plain text: there is nothing to enrol");
      return FinishEnroll(s.audit, who, call.method(), "", refused, false);
    }
    return fn(who);
  });
}

grpc::Status BeginEnroll(AgentContext& s,
                         Call<v1::BeginEnrollRequest, v1::BeginEnrollReply>& call) {
  return Enrolling(s, call, [&](const Caller& who) {
    const auto& req = call.req;
    auto hello = s.enrollment->Begin(req.client_nonce(), req.client_proof(), !who.join_token);
    if (hello.ok()) {
      auto* reply = &call.reply;
      reply->set_agent_nonce(hello->agent_nonce);
      reply->set_public_key_pem(hello->public_key_pem);
      reply->set_agent_proof(hello->agent_proof);
      reply->set_hostname(HostName());
      reply->set_enrolled(hello->enrolled);
    }
    return FinishEnroll(s.audit, who, call.method(), "", hello.status(), false);
  });
}

grpc::Status CompleteEnroll(AgentContext& s,
                            Call<v1::CompleteEnrollRequest, v1::CompleteEnrollReply>& call) {
  return Enrolling(s, call, [&](const Caller& who) {
    const auto& req = call.req;
    auto done = s.enrollment->Complete(req.agent_nonce(), req.certificate_pem(), req.ca_pem(),
                                       req.proof(), !who.join_token);
    if (!done.ok()) {
      return FinishEnroll(s.audit, who, call.method(), "", done.status(), false);
    }
    // A first enrolment is served at once (the listener restarts after this
    // reply); a renewal within tls.reload_interval, without cutting calls.
    const auto reload =
        done->renewal
            ? std::chrono::duration_cast<std::chrono::seconds>(s.config.tls_reload).count()
            : 0;
    if (!done->renewal) call.after = s.on_enrolled;
    call.reply.set_serial(done->cert.serial);
    call.reply.set_not_after_unix(done->cert.not_after);
    call.reply.set_reload_seconds(static_cast<uint32_t>(reload));
    std::string args = fmt::format("{} name={} serial={}", done->renewal ? "renewed" : "enrolled",
                                   done->cert.common_name, done->cert.serial);
    // The fleet's revocation list comes with the certificate: a device that
    // joins late refuses what was revoked before it joined.
    if (!req.revocations().empty()) {
      auto list = s.authz.InstallRevocations(req.revocations());
      args += list.ok() ? fmt::format(" revocations=v{}", list->version)
                        : " revocations refused: " + list.status().message();
      if (!list.ok())
        spdlog::warn("revocation list with the certificate: {}", list.status().message());
    }
    spdlog::info("certificate {} by {}: serving it within {} s", args, who.name, reload);
    return FinishEnroll(s.audit, who, call.method(), args, Status::Ok(), true);
  });
}

grpc::Status Apply(AgentContext& s, Call<v1::ApplyRequest, v1::ApplyReply>& call) {
  return Authorized(s, call, [&](const Caller& who) {
    return rpc::ToGrpc(HandleApply(s, who, call.req, &call.reply));
  });
}

const Method<v1::InfoRequest, v1::InfoReply> kInfo{method::kInfo, &A::RequestInfo, &Info, false};
const Method<v1::FactsRequest, v1::FactsReply> kFacts{method::kFacts, &A::RequestFacts, &Facts,
                                                      false};
const Method<v1::HealthRequest, v1::HealthReply> kHealth{method::kHealth, &A::RequestHealth,
                                                         &Health, false};
const Method<v1::ReadAuditRequest, v1::ReadAuditReply> kReadAudit{
    method::kReadAudit, &A::RequestReadAudit, &ReadAudit, true};
const Method<v1::SetRevocationsRequest, v1::SetRevocationsReply> kSetRevocations{
    method::kSetRevocations, &A::RequestSetRevocations, &SetRevocations, true};
const Method<v1::BeginEnrollRequest, v1::BeginEnrollReply> kBeginEnroll{
    method::kBeginEnroll, &A::RequestBeginEnroll, &BeginEnroll, true};
const Method<v1::CompleteEnrollRequest, v1::CompleteEnrollReply> kCompleteEnroll{
    method::kCompleteEnroll, &A::RequestCompleteEnroll, &CompleteEnroll, true};
const Method<v1::ApplyRequest, v1::ApplyReply> kApply{method::kApply, &A::RequestApply, &Apply,
                                                      true};

}  // namespace

AgentService::AgentService(AgentContext& c) : c_(c) { c_.authz.Allow(Policies()); }

void AgentService::Register(grpc::ServerBuilder& builder) { builder.RegisterService(&async_); }

void AgentService::Arm(rpc::CallQueue& q) {
  Call<v1::InfoRequest, v1::InfoReply>::Arm(q, async_, c_, kInfo);
  Call<v1::FactsRequest, v1::FactsReply>::Arm(q, async_, c_, kFacts);
  Call<v1::HealthRequest, v1::HealthReply>::Arm(q, async_, c_, kHealth);
  Call<v1::ReadAuditRequest, v1::ReadAuditReply>::Arm(q, async_, c_, kReadAudit);
  Call<v1::SetRevocationsRequest, v1::SetRevocationsReply>::Arm(q, async_, c_, kSetRevocations);
  Call<v1::BeginEnrollRequest, v1::BeginEnrollReply>::Arm(q, async_, c_, kBeginEnroll);
  Call<v1::CompleteEnrollRequest, v1::CompleteEnrollReply>::Arm(q, async_, c_, kCompleteEnroll);
  Call<v1::ApplyRequest, v1::ApplyReply>::Arm(q, async_, c_, kApply);
  ArmExecCall(q, async_, c_);
  ArmPutFileCall(q, async_, c_);
}

}  // namespace herd::agent

#include "agent/apps/app_service.h"

#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>

#include "agent/apps/app_process.h"
#include "agent/apps/catalog_install.h"
#include "agent/apps/install_call.h"
#include "agent/startup_pages.h"
#include "common/app/catalog.h"
#include "common/hash.h"
#include "common/text.h"
#include "proto/rpc/status_map.h"
#include "proto/rpc/unary_call.h"

namespace herd::agent {
namespace {

namespace app_method = rpc::app_method;
template <class Req, class Rep>
using Call = rpc::UnaryCall<AppsContext, v1::Apps::AsyncService, Req, Rep>;
template <class Req, class Rep>
using Method = typename Call<Req, Rep>::Method;
using A = v1::Apps::AsyncService;

void Fill(const InstalledVersionInfo& v, v1::InstalledVersion* out) {
  out->set_version(v.version);
  out->set_sequence(v.sequence);
  out->set_bundle_sha256(v.bundle_sha256);
  out->set_files(v.files);
  out->set_bytes(v.bytes);
  out->set_installed_unix(v.installed_unix);
  for (const auto& s : v.signers) out->add_signers(s);
}

void Fill(const ActivationRecord& a, v1::Activation* out) {
  out->set_id(a.id);
  out->set_kind(a.kind);
  out->set_from_sequence(a.from);
  out->set_to_sequence(a.to);
  out->set_step(a.step);
  out->set_snapshot(a.snapshot);
  out->set_outcome(a.outcome);
  out->set_reason(a.reason);
  out->set_started_unix(a.started_unix);
  out->set_ended_unix(a.ended_unix);
  out->set_rollout_id(a.rollout);
}

// What runs of `app`, from the database and the supervisor.
void FillRuntime(AppsContext& s, v1::InstalledApp* app) {
  const auto rec = s.db.App(app->name());
  if (rec) {
    app->set_current_sequence(rec->current);
    app->set_previous_sequence(rec->previous);
    app->set_data_format(rec->data_format);
    for (const auto& v : app->versions()) {
      if (v.sequence() == rec->current) app->set_current_version(v.version());
    }
  }
  app->set_sandbox("bwrap");
  app->set_limits(s.supervisor.limits_mode());
  const auto last = s.db.Last(app->name());
  if (last) Fill(*last, app->mutable_last_activation());
  const auto info = s.supervisor.Info(app->name());
  if (!info) {
    app->set_state("stopped");
    return;
  }
  app->set_running_sequence(info->running);
  app->set_limits(info->limits);
  app->set_state(last && last->outcome.empty()  ? "activating"
                 : info->running == 0           ? "stopped"
                 : info->health.state == "okay" ? "running"
                                                : "starting");
  app->set_health(info->health.state);
  app->set_reason(info->health.reason);
  app->set_restarts(info->restarts);
  app->set_started_unix(info->started_unix);
  app->set_pid(info->pid);
  app->set_rss_bytes(info->rss_bytes);
  app->set_cpu_seconds(info->cpu_seconds);
  app->set_last_exit(info->last_exit);
}

grpc::Status List(AppsContext& s, Call<v1::ListAppsRequest, v1::ListAppsReply>& call) {
  auto who = Authorize(s.agent, call.ctx(), call.method());
  if (!who.ok()) return rpc::ToGrpc(who.status());
  v1::InstalledApp* app = nullptr;
  for (const auto& v : s.store.List()) {
    if (!app || app->name() != v.name) {
      if (app) FillRuntime(s, app);
      app = call.reply.add_apps();
      app->set_name(v.name);
    }
    Fill(v, app->add_versions());
  }
  if (app) FillRuntime(s, app);
  return grpc::Status::OK;
}

grpc::Status InstallStatus(AppsContext& s,
                           Call<v1::InstallStatusRequest, v1::InstallStatusReply>& call) {
  auto who = Authorize(s.agent, call.ctx(), call.method());
  if (!who.ok()) return rpc::ToGrpc(who.status());
  const std::string& sha = call.req.sha256();
  if (!IsSha256Hex(sha)) {
    return rpc::ToGrpc(Status::Invalid("sha256 must be 64 lower-case hex digits"));
  }
  InstalledVersionInfo v;
  call.reply.set_installed(s.store.Installed(sha, &v));
  if (!call.reply.installed()) call.reply.set_have_bytes(PartialBytes(s.store.PartialPath(sha)));
  return grpc::Status::OK;
}

// An app name as a request carries it: what app.yaml allows.
Status CheckName(const std::string& name) {
  if (std::string e = app::AppNameError(name); !e.empty()) return Status::Invalid("app name " + e);
  return Status::Ok();
}

using CatalogCall = Call<v1::CatalogInstallRequest, v1::CatalogInstallReply>;

grpc::Status InstallFromCatalog(AppsContext& s, CatalogCall& call) {
  auto who = Authorize(s.agent, call.ctx(), call.method());
  if (!who.ok()) return rpc::ToGrpc(who.status());
  const auto& r = call.req;
  if (Status st = CheckName(r.name()); !st.ok()) return rpc::ToGrpc(st);
  if (!r.version().empty()) {
    if (std::string e = app::AppVersionError(r.version()); !e.empty()) {
      return rpc::ToGrpc(Status::Invalid("version " + e));
    }
  }
  if (!r.channel().empty()) {
    if (std::string e = app::ChannelError(r.channel()); !e.empty()) {
      return rpc::ToGrpc(Status::Invalid("channel " + e));
    }
  }
  CatalogInstallRequest req{r.name(), r.version(), r.channel(), r.allow_downgrade(),
                            r.resolve_only()};
  AuditEntry entry = EntryFor(*who, call.method());
  entry.args = fmt::format("{}{}{}{}{}", req.name, req.version.empty() ? "" : "@" + req.version,
                           req.channel.empty() ? "" : " channel=" + req.channel,
                           req.allow_downgrade ? " allow_downgrade" : "",
                           req.resolve_only ? " resolve_only" : "");
  const auto deadline = call.ctx().deadline();
  if (++s.catalog_installs > kMaxCatalogInstalls) {
    --s.catalog_installs;
    return rpc::ToGrpc(Status(StatusCode::kResourceExhausted,
                              fmt::format("the agent is busy: {} catalogue installs at once; try "
                                          "again when one has ended",
                                          kMaxCatalogInstalls)));
  }
  const bool spawned = s.activator.Spawn([&s, &call, req, entry, deadline]() mutable {
    struct Done {
      std::atomic<int>& n;
      ~Done() { --n; }
    } done{s.catalog_installs};
    const Cancelled cancelled = [&s, deadline] {
      return s.activator.stopping() || std::chrono::system_clock::now() > deadline;
    };
    auto out = InstallFromCatalog(s.agent.config.apps, s.store, s.db, req, cancelled);
    if (!out.ok()) {
      const bool down = out.status().code() == StatusCode::kUnavailable;
      s.agent.metrics.RecordCatalogInstall(down ? "unavailable" : "refused", 0);
      entry.result = "failed: " + out.status().message();
      (void)s.agent.audit.Append(entry);
      ReleaseAfterWork("a catalogue install");
      // The device answered: a catalogue it cannot reach is its failure,
      // not the device being unreachable.
      return call.Complete(
          rpc::ToGrpc(down ? Status(StatusCode::kFailedPrecondition,
                                    "the catalogue could not be reached from the device: " +
                                        out.status().message())
                           : out.status()));
    }
    auto& rep = call.reply;
    rep.set_catalog_url(out->url);
    rep.set_index_sequence(out->index_sequence);
    rep.set_channel(out->channel);
    rep.set_version(out->entry.version);
    rep.set_sequence(out->entry.sequence);
    rep.set_bundle_sha256(out->entry.sha256);
    rep.set_size(out->entry.size);
    rep.set_downloaded_bytes(out->downloaded);
    rep.set_resumed_from(out->resumed_from);
    const char* outcome = req.resolve_only                   ? "resolved"
                          : out->installed.already_installed ? "already_installed"
                                                             : "installed";
    if (!req.resolve_only) FillInstallReply(out->installed, rep.mutable_installed());
    s.agent.metrics.RecordCatalogInstall(outcome, out->downloaded);
    entry.result = fmt::format("ok: {} {} (sequence {}) {} from {} (index {}, {} bytes fetched)",
                               req.name, out->entry.version, out->entry.sequence, outcome, out->url,
                               out->index_sequence, out->downloaded);
    (void)s.agent.audit.Append(entry);
    if (!req.resolve_only) ReleaseAfterWork("a catalogue install");
    call.Complete(grpc::Status::OK);
  });
  if (!spawned) {
    --s.catalog_installs;
    return rpc::ToGrpc(
        Status(StatusCode::kResourceExhausted, "the agent is busy: too many activations at once"));
  }
  return CatalogCall::Deferred();
}

using ActivateCall = Call<v1::ActivateRequest, v1::ActivateReply>;

grpc::Status Activate(AppsContext& s, ActivateCall& call) {
  auto who = Authorize(s.agent, call.ctx(), call.method());
  if (!who.ok()) return rpc::ToGrpc(who.status());
  const auto& r = call.req;
  if (Status st = CheckName(r.name()); !st.ok()) return rpc::ToGrpc(st);
  if (r.version().size() > 128) return rpc::ToGrpc(Status::Invalid("version too long"));
  if (!r.rollback() && r.version().empty() && r.sequence() == 0) {
    return rpc::ToGrpc(Status::Invalid("give the version (or sequence) to activate"));
  }
  if (r.restore_data() && !r.rollback()) {
    return rpc::ToGrpc(Status::Invalid("restore_data goes with rollback only"));
  }
  if (!IsRolloutId(r.rollout_id())) {
    return rpc::ToGrpc(Status::Invalid("rollout_id must be at most 64 of A-Z a-z 0-9 . _ -"));
  }
  ActivationRequest req;
  req.name = r.name();
  req.version = r.version();
  req.sequence = r.sequence();
  req.no_snapshot = r.no_snapshot();
  req.rollback = r.rollback();
  req.restore_data = r.restore_data();
  req.who = who->name;
  req.rollout_id = r.rollout_id();
  AuditEntry entry = EntryFor(*who, call.method());
  entry.args =
      fmt::format("{} {}{}{}{}", req.name,
                  req.rollback          ? "rollback"
                  : req.version.empty() ? "sequence " + std::to_string(req.sequence)
                                        : req.version,
                  req.no_snapshot ? " no_snapshot" : "", req.restore_data ? " restore_data" : "",
                  req.rollout_id.empty() ? "" : " rollout=" + req.rollout_id);
  const bool spawned = s.activator.Spawn([&s, &call, req, entry]() mutable {
    auto out = s.activator.Activate(req);
    if (!out.ok()) {
      entry.result = "refused: " + out.status().message();
      (void)s.agent.audit.Append(entry);
      return call.Complete(rpc::ToGrpc(out.status()));
    }
    Fill(out->record, call.reply.mutable_activation());
    call.reply.set_from_version(out->from_version);
    call.reply.set_to_version(out->to_version);
    call.reply.set_duration_ms(out->duration_ms);
    call.reply.set_snapshot_ms(out->snapshot_ms);
    call.reply.set_stop_ms(out->stop_ms);
    call.reply.set_start_ms(out->start_ms);
    call.reply.set_first_healthy_ms(out->first_healthy_ms);
    entry.result = out->record.outcome + ": " + out->record.reason;
    (void)s.agent.audit.Append(entry);
    call.Complete(grpc::Status::OK);
  });
  if (!spawned) {
    return rpc::ToGrpc(
        Status(StatusCode::kResourceExhausted, "the agent is busy: too many activations at once"));
  }
  return ActivateCall::Deferred();
}

using RemoveCall = Call<v1::RemoveAppRequest, v1::RemoveAppReply>;

grpc::Status Remove(AppsContext& s, RemoveCall& call) {
  auto who = Authorize(s.agent, call.ctx(), call.method());
  if (!who.ok()) return rpc::ToGrpc(who.status());
  const auto& r = call.req;
  if (Status st = CheckName(r.name()); !st.ok()) return rpc::ToGrpc(st);
  AuditEntry entry = EntryFor(*who, call.method());
  entry.args = r.name() + (r.purge() ? " purge" : "");
  if (r.purge() && who->role < pki::Role::kAdmin) {
    entry.result = "denied: purging an app's data needs the admin role";
    (void)s.agent.audit.AppendRefusal(entry, who->serial);
    return rpc::ToGrpc(
        Status(StatusCode::kPermissionDenied, "purging an app's data needs the admin role"));
  }
  const std::string name = r.name(), caller = who->name;
  const bool purge = r.purge();
  const bool spawned = s.activator.Spawn([&s, &call, name, purge, caller, entry]() mutable {
    Status st = s.activator.Remove(name, purge, caller);
    entry.result = st.ok() ? "ok" : "failed: " + st.message();
    (void)s.agent.audit.Append(entry);
    call.Complete(rpc::ToGrpc(st));
  });
  if (!spawned) {
    return rpc::ToGrpc(
        Status(StatusCode::kResourceExhausted, "the agent is busy: too many activations at once"));
  }
  return RemoveCall::Deferred();
}

grpc::Status Logs(AppsContext& s, Call<v1::AppLogsRequest, v1::AppLogsReply>& call) {
  auto who = Authorize(s.agent, call.ctx(), call.method());
  if (!who.ok()) return rpc::ToGrpc(who.status());
  if (Status st = CheckName(call.req.name()); !st.ok()) return rpc::ToGrpc(st);
  const std::string path = s.supervisor.LogPath(call.req.name());
  if (::access(path.c_str(), F_OK) != 0) {
    return rpc::ToGrpc(Status::NotFound("app " + call.req.name() + " has no log on this device"));
  }
  if (call.req.from_offset()) {
    uint64_t offset = call.req.offset();
    call.reply.set_text(ReadLogFrom(path, &offset, 1 << 20));
    call.reply.set_end_offset(offset);
    return grpc::Status::OK;
  }
  const uint32_t tail = call.req.tail() ? std::min<uint32_t>(call.req.tail(), 100'000) : 100;
  call.reply.set_text(TailLog(path, tail, 1 << 20));
  struct stat st {};
  call.reply.set_end_offset(::stat(path.c_str(), &st) == 0 ? static_cast<uint64_t>(st.st_size) : 0);
  return grpc::Status::OK;
}

const Method<v1::ListAppsRequest, v1::ListAppsReply> kList{app_method::kList, &A::RequestList,
                                                           &List, false};
const Method<v1::InstallStatusRequest, v1::InstallStatusReply> kInstallStatus{
    app_method::kInstallStatus, &A::RequestInstallStatus, &InstallStatus, false};
const Method<v1::CatalogInstallRequest, v1::CatalogInstallReply> kInstallFromCatalog{
    app_method::kInstallFromCatalog, &A::RequestInstallFromCatalog, &InstallFromCatalog, false};
const Method<v1::ActivateRequest, v1::ActivateReply> kActivate{
    app_method::kActivate, &A::RequestActivate, &Activate, false};
const Method<v1::RemoveAppRequest, v1::RemoveAppReply> kRemove{app_method::kRemove,
                                                               &A::RequestRemove, &Remove, false};
const Method<v1::AppLogsRequest, v1::AppLogsReply> kLogs{app_method::kLogs, &A::RequestLogs, &Logs,
                                                         true};

}  // namespace

const std::vector<MethodPolicy>& AppService::Policies() {
  using pki::Role;
  static const std::vector<MethodPolicy> kPolicies = {
      {app_method::kList, Role::kViewer},
      {app_method::kInstall, Role::kOperator},
      {app_method::kInstallStatus, Role::kOperator},
      {app_method::kInstallFromCatalog, Role::kOperator},
      {app_method::kActivate, Role::kOperator},
      {app_method::kRemove, Role::kOperator},  // purge: admin, checked by the handler
      {app_method::kLogs, Role::kViewer},
  };
  return kPolicies;
}

AppService::AppService(AgentContext& c, AppStore& store, AppDb& db, Supervisor& supervisor,
                       Activator& activator)
    : c_{c, store, db, supervisor, activator} {
  c.authz.Allow(Policies());
}

void AppService::Register(grpc::ServerBuilder& builder) { builder.RegisterService(&async_); }

void AppService::Arm(rpc::CallQueue& q) {
  Call<v1::ListAppsRequest, v1::ListAppsReply>::Arm(q, async_, c_, kList);
  Call<v1::InstallStatusRequest, v1::InstallStatusReply>::Arm(q, async_, c_, kInstallStatus);
  CatalogCall::Arm(q, async_, c_, kInstallFromCatalog);
  ActivateCall::Arm(q, async_, c_, kActivate);
  RemoveCall::Arm(q, async_, c_, kRemove);
  Call<v1::AppLogsRequest, v1::AppLogsReply>::Arm(q, async_, c_, kLogs);
  ArmInstallCall(q, async_, c_);
}

}  // namespace herd::agent

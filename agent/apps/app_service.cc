#include "agent/apps/app_service.h"

#include "agent/apps/install_call.h"
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

grpc::Status List(AppsContext& s, Call<v1::ListAppsRequest, v1::ListAppsReply>& call) {
  auto who = Authorize(s.agent, call.ctx(), call.method());
  if (!who.ok()) return rpc::ToGrpc(who.status());
  v1::InstalledApp* app = nullptr;
  for (const auto& v : s.store.List()) {
    if (!app || app->name() != v.name) {
      app = call.reply.add_apps();
      app->set_name(v.name);
    }
    Fill(v, app->add_versions());
  }
  return grpc::Status::OK;
}

const Method<v1::ListAppsRequest, v1::ListAppsReply> kList{app_method::kList, &A::RequestList,
                                                           &List, false};

}  // namespace

const std::vector<MethodPolicy>& AppService::Policies() {
  using pki::Role;
  static const std::vector<MethodPolicy> kPolicies = {
      {app_method::kList, Role::kViewer},
      {app_method::kInstall, Role::kOperator},
  };
  return kPolicies;
}

AppService::AppService(AgentContext& c, AppStore& store) : c_{c, store} {
  c.authz.Allow(Policies());
}

void AppService::Register(grpc::ServerBuilder& builder) { builder.RegisterService(&async_); }

void AppService::Arm(rpc::CallQueue& q) {
  Call<v1::ListAppsRequest, v1::ListAppsReply>::Arm(q, async_, c_, kList);
  ArmInstallCall(q, async_, c_);
}

}  // namespace herd::agent

// AppService: herd.v1.Apps on herdd (proto/herd/v1/app.proto), a thin
// adapter on the shared framework (proto/rpc/call_queue.h) over the
// gRPC-free AppStore, Supervisor and Activator. Install has a file of its
// own (install_call.h); List runs on the serving thread (a folder scan),
// Logs on the slow-work thread, Activate and Remove on threads of the
// Activator (they wait for apps to stop, start and become healthy).
#pragma once

#include <atomic>
#include <vector>

#include "agent/agent_context.h"
#include "agent/apps/activation.h"
#include "agent/apps/app_store.h"
#include "agent/apps/supervisor.h"
#include "herd/v1/app.grpc.pb.h"
#include "proto/rpc/call_queue.h"

namespace herd::agent {

// What the calls of the Apps service share.
struct AppsContext {
  AgentContext& agent;
  AppStore& store;
  AppDb& db;
  Supervisor& supervisor;
  Activator& activator;
  // Catalogue installs in flight: they use the Activator's threads, so at
  // most kMaxCatalogInstalls at once leave room for activations.
  std::atomic<int> catalog_installs{0};
};

inline constexpr int kMaxCatalogInstalls = 2;

class AppService final : public rpc::Service {
 public:
  // Registers the service's policies with the agent's Authorizer.
  AppService(AgentContext& c, AppStore& store, AppDb& db, Supervisor& supervisor,
             Activator& activator);

  void Register(grpc::ServerBuilder& builder) override;
  void Arm(rpc::CallQueue& queue) override;

  // Who may call each method of herd.v1.Apps; any other is refused.
  static const std::vector<MethodPolicy>& Policies();

 private:
  AppsContext c_;
  v1::Apps::AsyncService async_;
};

}  // namespace herd::agent

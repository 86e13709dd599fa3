#include "control/session.h"

#include "common/duration.h"
#include "control/grpc_agent_client.h"
#include "control/mux.h"
#include "control/pki_store.h"
#include "control/selector.h"

namespace herd::control {

Result<std::chrono::milliseconds> ResolveTimeout(const std::string& text,
                                                 std::chrono::milliseconds fallback) {
  if (text.empty()) return fallback;
  auto t = ParseDuration(text);
  if (!t.ok()) return Status::Invalid("--timeout: " + t.status().message());
  if (t->count() <= 0) return Status::Invalid("--timeout must be positive");
  if (*t > std::chrono::hours(24)) return Status::Invalid("--timeout must be at most 24h");
  return *t;
}

Result<Targets> SelectTargets(const std::string& inventory_path, const std::string& target,
                              bool target_given, bool default_all, bool allow_empty) {
  auto inventory = LoadInventory(ResolveInventoryPath(inventory_path));
  if (!inventory.ok()) return inventory.status();
  std::string selector = target;
  if (selector.empty()) {
    if (!default_all || target_given) {
      return Status::Invalid("TARGET is empty; say 'all' to mean every host");
    }
    selector = "all";
  }
  Targets t;
  t.inventory = std::make_unique<const Inventory>(std::move(*inventory));
  auto hosts = SelectHosts(*t.inventory, selector, allow_empty);
  if (!hosts.ok()) return hosts.status();
  t.hosts = std::move(*hosts);
  return t;
}

Result<std::unique_ptr<AgentClientFactory>> ConnectToAgents(const ConnectOptions& opts) {
  if (opts.plaintext) {
    rpc::TransportOptions plain;
    plain.plaintext = true;
    return MakeGrpcClientFactory(plain);
  }
  const std::string pki_dir = ResolvePkiDir(opts.pki_dir);
  auto id = rpc::LoadIdentity(pki_dir, opts.identity);
  if (!id.ok()) return id.status();
  // A running mux for this identity saves a TLS handshake per host.
  const std::string socket = MuxSocketPath(pki_dir, opts.identity);
  if (!opts.no_mux && MuxPid(socket) != 0) return MakeMuxClientFactory(socket);
  return MakeGrpcClientFactory(*id);
}

}  // namespace herd::control

// What a fan-out command needs before its operation runs: the hosts its
// TARGET selects, the per-host timeout, and the way to the agents (direct
// connections with the caller's identity, or the identity's running mux).
// CLI thread only.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "control/agent_client.h"
#include "control/inventory.h"

namespace herd::control {

// --timeout: `text` ("" for `fallback`), positive and at most 24h.
Result<std::chrono::milliseconds> ResolveTimeout(const std::string& text,
                                                 std::chrono::milliseconds fallback);

struct Targets {
  std::unique_ptr<const Inventory> inventory;
  std::vector<const Host*> hosts;  // into *inventory, in inventory order
};
// Loads the inventory (-i, $HERD_INVENTORY, or the default path) and selects
// `target`. An empty target is an error -- an unset shell variable must never
// mean "every host" -- unless it was not given at all and `default_all`.
Result<Targets> SelectTargets(const std::string& inventory_path, const std::string& target,
                              bool target_given, bool default_all, bool allow_empty);

struct ConnectOptions {
  std::string pki_dir;  // "" for the default (--pki-dir, $HERD_PKI_DIR, ~/.config/herd/pki)
  std::string identity = "admin";
  bool plaintext = false;
  bool no_mux = false;
};
// Clients through the identity's running mux when there is one (never with
// plaintext or no_mux), else direct connections with its credentials. A
// missing or broken identity is an error naming the file.
Result<std::unique_ptr<AgentClientFactory>> ConnectToAgents(const ConnectOptions& opts);

}  // namespace herd::control

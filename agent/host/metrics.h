// AgentMetrics: the agent's Prometheus registry and /metrics endpoint: build
// info, gRPC requests by method and code (recorded as each call finishes),
// exec count and duration, app installs, audit write errors, host gauges and the agent's
// own footprint (computed at scrape time). gRPC-free. Thread-safe: record
// methods may be called from any thread.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace prometheus {
class Registry;
class Histogram;
template <typename T>
class Family;
class Counter;
}  // namespace prometheus

namespace herd::agent {

class ScrapeServer;

// One supervised app, as the metrics show it (read at scrape time).
struct AppSample {
  std::string name, version;
  uint64_t sequence = 0;
  bool up = false;  // running and healthy
  int restarts = 0;
  uint64_t rss_bytes = 0;
  double cpu_seconds = 0;
  std::map<std::string, uint64_t> health_failures;  // by reason code
  std::string limits = "rlimit";
};

class AgentMetrics {
 public:
  explicit AgentMetrics(std::string state_dir);
  ~AgentMetrics();

  // Binds /metrics on `address` (host:port, port 0 picks one). Returns the port.
  Result<int> Serve(const std::string& address);

  // `method` is the short name ("Exec"), `grpc_code` gRPC's status code.
  void RecordRpc(std::string_view method, int grpc_code);
  void RecordExec(const std::string& result, double seconds);
  void RecordAuditWriteError();
  // An app install ended: `outcome` installed | already_installed | refused;
  // `seconds` the device's own work (verification and extraction), 0 when
  // there was none.
  void RecordInstall(const std::string& outcome, double seconds);
  // An activation (or rollback) of `app` ended with `outcome` (committed,
  // rolled-back, failed) after `seconds`.
  // `rollout`: the rollout id it was a step of ("" when none).
  void RecordActivation(const std::string& app, const std::string& outcome, double seconds,
                        const std::string& rollout = "");
  // A catalogue install ended (installed, already_installed, resolved,
  // refused, unavailable), having fetched `bytes` of bundle.
  void RecordCatalogInstall(const std::string& outcome, uint64_t bytes);
  // The apps' per-app gauges come from `sample`, called at each scrape.
  void WatchApps(std::function<std::vector<AppSample>()> sample);

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  std::shared_ptr<class HostCollector> host_;
  prometheus::Family<prometheus::Counter>* rpcs_;
  prometheus::Family<prometheus::Counter>* execs_;
  prometheus::Counter* audit_write_errors_;
  prometheus::Histogram* exec_duration_;
  prometheus::Family<prometheus::Counter>* installs_;
  prometheus::Histogram* install_duration_;
  prometheus::Family<prometheus::Counter>* activations_;
  prometheus::Family<prometheus::Histogram>* activation_duration_;
  prometheus::Family<prometheus::Counter>* rollout_steps_;
  prometheus::Family<prometheus::Counter>* catalog_installs_;
  prometheus::Counter* catalog_bytes_;
  std::unique_ptr<ScrapeServer> server_;  // last: stopped before what it reads
};

}  // namespace herd::agent

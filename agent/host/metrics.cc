#include "agent/host/metrics.h"

#include <prometheus/collectable.h>
#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>
#include <unistd.h>

#include <chrono>
#include <fstream>

#include "agent/host/host_info.h"
#include "agent/host/scrape_server.h"

namespace herd::agent {

namespace {

prometheus::MetricFamily Family(const std::string& name, const std::string& help,
                                prometheus::MetricType type) {
  prometheus::MetricFamily f;
  f.name = name;
  f.help = help;
  f.type = type;
  return f;
}

void AddGauge(prometheus::MetricFamily& f, double v,
              std::vector<prometheus::ClientMetric::Label> labels = {}) {
  prometheus::ClientMetric m;
  m.label = std::move(labels);
  if (f.type == prometheus::MetricType::Counter) {
    m.counter.value = v;
  } else {
    m.gauge.value = v;
  }
  f.metric.push_back(std::move(m));
}

const char* GrpcCodeName(int code) {
  static const char* kNames[] = {"OK",
                                 "CANCELLED",
                                 "UNKNOWN",
                                 "INVALID_ARGUMENT",
                                 "DEADLINE_EXCEEDED",
                                 "NOT_FOUND",
                                 "ALREADY_EXISTS",
                                 "PERMISSION_DENIED",
                                 "RESOURCE_EXHAUSTED",
                                 "FAILED_PRECONDITION",
                                 "ABORTED",
                                 "OUT_OF_RANGE",
                                 "UNIMPLEMENTED",
                                 "INTERNAL",
                                 "UNAVAILABLE",
                                 "DATA_LOSS",
                                 "UNAUTHENTICATED"};
  return code >= 0 && code <= 16 ? kNames[code] : "UNKNOWN";
}

}  // namespace

// Host gauges and the agent's own footprint, read fresh on every scrape.
class HostCollector : public prometheus::Collectable {
 public:
  explicit HostCollector(std::string state_dir) : state_dir_(std::move(state_dir)) {}
  std::function<std::vector<AppSample>()> apps;  // set before the server starts

  static void CollectApps(const std::vector<AppSample>& apps,
                          std::vector<prometheus::MetricFamily>* out) {
    using prometheus::MetricType;
    auto up = Family("herd_app_up", "1 when the app runs and is healthy", MetricType::Gauge);
    auto info = Family("herd_app_info", "The version an app runs", MetricType::Gauge);
    auto restarts = Family("herd_app_restarts_total", "Restarts of an app by its supervisor",
                           MetricType::Counter);
    auto failures = Family("herd_app_health_failures_total",
                           "Failed health probes of an app, by reason code", MetricType::Counter);
    auto mem = Family("herd_app_memory_bytes", "Resident memory of an app's main process",
                      MetricType::Gauge);
    auto cpu = Family("herd_app_cpu_seconds_total", "CPU time of an app's main process",
                      MetricType::Counter);
    auto limits = Family("herd_app_limits", "How an app's memory and pids are limited (mode)",
                         MetricType::Gauge);
    for (const auto& a : apps) {
      AddGauge(up, a.up ? 1 : 0, {{"app", a.name}});
      AddGauge(info, 1,
               {{"app", a.name}, {"version", a.version}, {"sequence", std::to_string(a.sequence)}});
      AddGauge(restarts, a.restarts, {{"app", a.name}});
      for (const auto& [reason, n] : a.health_failures) {
        AddGauge(failures, static_cast<double>(n), {{"app", a.name}, {"reason", reason}});
      }
      AddGauge(mem, static_cast<double>(a.rss_bytes), {{"app", a.name}});
      AddGauge(cpu, a.cpu_seconds, {{"app", a.name}});
      AddGauge(limits, 1, {{"app", a.name}, {"mode", a.limits}});
    }
    for (auto* f : {&up, &info, &restarts, &failures, &mem, &cpu, &limits}) {
      out->push_back(std::move(*f));
    }
  }

  std::vector<prometheus::MetricFamily> Collect() const override {
    using prometheus::MetricType;
    std::vector<prometheus::MetricFamily> out;
    HostFacts f = ReadHostFacts(state_dir_);
    auto cpu = Family("herd_host_cpu_seconds_total", "Host CPU time by mode", MetricType::Counter);
    for (const auto& [mode, secs] : ReadCpuSeconds()) AddGauge(cpu, secs, {{"mode", mode}});
    out.push_back(std::move(cpu));
    auto mem = Family("herd_host_memory_bytes", "Host memory", MetricType::Gauge);
    AddGauge(mem, static_cast<double>(f.mem_total), {{"kind", "total"}});
    AddGauge(mem, static_cast<double>(f.mem_available), {{"kind", "available"}});
    out.push_back(std::move(mem));
    auto fs = Family("herd_host_filesystem_bytes", "Filesystem holding the agent state directory",
                     MetricType::Gauge);
    AddGauge(fs, static_cast<double>(f.disk_total), {{"kind", "size"}, {"path", state_dir_}});
    AddGauge(fs, static_cast<double>(f.disk_available),
             {{"kind", "available"}, {"path", state_dir_}});
    out.push_back(std::move(fs));
    auto load = Family("herd_host_load", "Load average", MetricType::Gauge);
    AddGauge(load, f.load1, {{"period", "1m"}});
    AddGauge(load, f.load5, {{"period", "5m"}});
    AddGauge(load, f.load15, {{"period", "15m"}});
    out.push_back(std::move(load));
    auto cpus = Family("herd_host_cpus", "Online CPUs", MetricType::Gauge);
    AddGauge(cpus, f.cpus);
    out.push_back(std::move(cpus));
    auto up = Family("herd_host_uptime_seconds", "Host uptime", MetricType::Gauge);
    AddGauge(up, f.uptime);
    out.push_back(std::move(up));

    // The agent's own footprint, from /proc/self.
    std::ifstream statm("/proc/self/statm");
    long pages_total = 0, pages_rss = 0;
    statm >> pages_total >> pages_rss;
    auto rss =
        Family("herd_agent_resident_memory_bytes", "herdd resident memory", MetricType::Gauge);
    AddGauge(rss, static_cast<double>(pages_rss) * sysconf(_SC_PAGESIZE));
    out.push_back(std::move(rss));
    std::ifstream stat("/proc/self/stat");
    std::string field;
    double ticks = 0;
    for (int i = 1; i <= 15 && stat >> field; ++i) {
      if (i == 14 || i == 15) ticks += std::stod(field);
    }
    auto cpu_self =
        Family("herd_agent_cpu_seconds_total", "herdd CPU time (user+system)", MetricType::Counter);
    AddGauge(cpu_self, ticks / sysconf(_SC_CLK_TCK));
    out.push_back(std::move(cpu_self));
    if (apps) CollectApps(apps(), &out);
    return out;
  }

 private:
  std::string state_dir_;
};

AgentMetrics::AgentMetrics(std::string state_dir)
    : registry_(std::make_shared<prometheus::Registry>()),
      host_(std::make_shared<HostCollector>(std::move(state_dir))) {
  auto& build = prometheus::BuildGauge()
                    .Name("herd_build_info")
                    .Help("herdd build information")
                    .Register(*registry_);
  build.Add({{"version", HERD_VERSION}}).Set(1);
  auto& start = prometheus::BuildGauge()
                    .Name("herd_agent_start_time_seconds")
                    .Help("Unix time herdd started")
                    .Register(*registry_);
  start.Add({}).Set(
      std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count());
  rpcs_ = &prometheus::BuildCounter()
               .Name("herd_grpc_requests_total")
               .Help("gRPC requests handled, by method and status code")
               .Register(*registry_);
  execs_ = &prometheus::BuildCounter()
                .Name("herd_exec_total")
                .Help("Commands run by Exec, by result (ok, failed, timeout, error)")
                .Register(*registry_);
  audit_write_errors_ = &prometheus::BuildCounter()
                             .Name("herd_audit_write_errors_total")
                             .Help("Audit log lines that could not be written")
                             .Register(*registry_)
                             .Add({});
  exec_duration_ =
      &prometheus::BuildHistogram()
           .Name("herd_exec_duration_seconds")
           .Help("Wall time of commands run by Exec")
           .Register(*registry_)
           .Add({}, prometheus::Histogram::BucketBoundaries{0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                                            0.5, 1, 2.5, 5, 10, 30, 60, 300});
  installs_ = &prometheus::BuildCounter()
                   .Name("herd_app_installs_total")
                   .Help("App installs, by outcome (installed, already_installed, refused)")
                   .Register(*registry_);
  activations_ = &prometheus::BuildCounter()
                      .Name("herd_app_activations_total")
                      .Help(
                          "App activations and rollbacks, by app and outcome (committed, "
                          "rolled-back, failed)")
                      .Register(*registry_);
  rollout_steps_ = &prometheus::BuildCounter()
                        .Name("herd_app_rollout_steps_total")
                        .Help(
                            "Activations that were steps of a rollout (herd rollout), by app "
                            "and outcome (committed, rolled-back, failed)")
                        .Register(*registry_);
  catalog_installs_ = &prometheus::BuildCounter()
                           .Name("herd_catalog_installs_total")
                           .Help(
                               "Installs from a catalogue, by outcome (installed, "
                               "already_installed, resolved, refused, unavailable)")
                           .Register(*registry_);
  catalog_bytes_ = &prometheus::BuildCounter()
                        .Name("herd_catalog_fetched_bytes_total")
                        .Help("Bundle bytes fetched from catalogues")
                        .Register(*registry_)
                        .Add({});
  activation_duration_ = &prometheus::BuildHistogram()
                              .Name("herd_app_activation_duration_seconds")
                              .Help("Time from an activation's start to its commit or revert")
                              .Register(*registry_);
  install_duration_ = &prometheus::BuildHistogram()
                           .Name("herd_app_install_duration_seconds")
                           .Help("Time the device spent verifying and extracting an app bundle")
                           .Register(*registry_)
                           .Add({}, prometheus::Histogram::BucketBoundaries{
                                        0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60});
}

AgentMetrics::~AgentMetrics() = default;

void AgentMetrics::WatchApps(std::function<std::vector<AppSample>()> sample) {
  host_->apps = std::move(sample);
}

void AgentMetrics::RecordActivation(const std::string& app, const std::string& outcome,
                                    double seconds, const std::string& rollout) {
  activations_->Add({{"app", app}, {"outcome", outcome}}).Increment();
  if (!rollout.empty()) rollout_steps_->Add({{"app", app}, {"outcome", outcome}}).Increment();
  activation_duration_
      ->Add({{"outcome", outcome}},
            prometheus::Histogram::BucketBoundaries{1, 2.5, 5, 10, 20, 30, 60, 120, 300})
      .Observe(seconds);
}

Result<int> AgentMetrics::Serve(const std::string& address) {
  auto server = ScrapeServer::Start(address, "/metrics", [this] {
    auto families = registry_->Collect();
    auto host = host_->Collect();
    families.insert(families.end(), std::make_move_iterator(host.begin()),
                    std::make_move_iterator(host.end()));
    return prometheus::TextSerializer().Serialize(families);
  });
  if (!server.ok()) return server.status();
  server_ = std::move(*server);
  return server_->port();
}

void AgentMetrics::RecordRpc(std::string_view method, int grpc_code) {
  rpcs_->Add({{"method", std::string(method)}, {"code", GrpcCodeName(grpc_code)}}).Increment();
}

void AgentMetrics::RecordAuditWriteError() { audit_write_errors_->Increment(); }

void AgentMetrics::RecordExec(const std::string& result, double seconds) {
  execs_->Add({{"result", result}}).Increment();
  exec_duration_->Observe(seconds);
}

void AgentMetrics::RecordCatalogInstall(const std::string& outcome, uint64_t bytes) {
  catalog_installs_->Add({{"outcome", outcome}}).Increment();
  catalog_bytes_->Increment(static_cast<double>(bytes));
}

void AgentMetrics::RecordInstall(const std::string& outcome, double seconds) {
  installs_->Add({{"outcome", outcome}}).Increment();
  if (outcome == "installed") install_duration_->Observe(seconds);
}

}  // namespace herd::agent

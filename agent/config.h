// herdd configuration: YAML file, then command-line overrides. Plain value.
#pragma once

#include <chrono>
#include <map>
#include <string>
#include <vector>

#include "common/app/minisign.h"
#include "common/defaults.h"
#include "common/status.h"

namespace herd::agent {

struct ExecLimits {
  std::chrono::milliseconds default_timeout = kDefaultCommandTimeout;
  std::chrono::milliseconds kill_grace{2'000};    // TERM, then KILL after this
  uint64_t max_output_bytes = 1 << 20;            // per stream, default
  uint64_t max_output_bytes_limit = 64ull << 20;  // a request may not ask for more
  int max_concurrent = 64;                        // execs running at once
  // The account commands run as and uploads are written as (the agent must
  // be root to switch; otherwise everything runs as the agent's own user).
  std::string run_as = "herd-run";
  bool allow_root = false;  // whether a caller may ask for root (herd run --root)
};

// Uploads (PutFile).
struct FileLimits {
  int max_concurrent = 16;  // uploads at once; more are refused (each holds a temporary)
};

// Apps on this device: the owner's policy (docs/apps.md). Apps are refused
// until `publishers` names at least one key.
// A catalogue the device installs apps from by name (docs/catalog.md).
struct CatalogSource {
  std::string url;     // its folder, ending in '/'
  app::PublicKey key;  // the key its index must be signed with
  std::vector<std::string> channels{
      "stable"};  // the channels this device takes; the first is its default
};

struct AppsSettings {
  // "": <state_dir>-apps, beside the state directory: apps must be able to
  // reach their files through it (0711), and the state directory is 0700.
  std::string dir;
  // The publishers whose signatures this device accepts: each a minisign
  // public key file (absolute path) or the key's base64 line, read at load.
  std::vector<app::PublicKey> publishers;
  // The catalogues `herd app install TARGET NAME[@VERSION]` fetches from,
  // in order: the first whose index has the app.
  std::vector<CatalogSource> catalogs;
  uint64_t max_bundle_bytes = 1ull << 30;    // an upload larger than this is refused
  uint64_t max_entries = 10'000;             // files in a payload
  uint64_t max_expanded_bytes = 1ull << 30;  // bytes of a payload, expanded
  int keep_versions = 3;                     // installed versions kept per app (newest)
  // What an app may be granted: anything more in its app.yaml is refused.
  bool allow_outbound = false;         // permissions.network: outbound
  uint64_t max_memory = 256ull << 20;  // resources.memory
  uint64_t max_pids = 128;             // resources.pids
  // Apps' own uids (and gids) are allocated from here, one per app.
  uint32_t uid_base = 61'000;
  uint32_t uid_count = 1'000;
  // Host ports of the apps' `listen` sockets, one per app and name, on
  // listen_address.
  uint32_t port_base = 18'000;
  uint32_t port_count = 1'000;
  std::string listen_address = "127.0.0.1";
  // The data snapshot before an activation: a copy when the filesystem
  // cannot reflink, up to this size (beyond: --no-snapshot is needed).
  uint64_t max_snapshot_copy = 1ull << 30;
  // A failed app is started again after restart_backoff, doubling up to
  // restart_backoff_max (back to the first once a run lasted 10 min).
  std::chrono::milliseconds restart_backoff{1'000};
  std::chrono::milliseconds restart_backoff_max{300'000};
  uint64_t max_log_bytes = 1ull << 20;  // an app's log file, rotated once beyond (one kept)
};

// The gRPC server's care for its connections.
struct GrpcSettings {
  // An idle connection is pinged this often; one whose client does not
  // answer within keepalive_timeout is closed, and its calls end.
  std::chrono::milliseconds keepalive{30'000};
  std::chrono::milliseconds keepalive_timeout{10'000};
};

// Thresholds of the Health checks.
struct HealthLimits {
  double min_disk_free_percent = 5;  // of the state dir's filesystem
  double min_memory_available_percent = 5;
  double max_load_per_cpu = 4;  // 5-minute load average / CPUs
};

// Joining a fleet (see agent/enrollment.h).
struct EnrollSettings {
  std::string token;       // one-time join token; "" reads or creates token_file
  std::string token_file;  // default <state_dir>/join-token
};

struct AgentConfig {
  std::string name;                                                       // fleet name (optional)
  std::string listen = "127.0.0.1:" + std::to_string(kDefaultAgentPort);  // gRPC
  // Prometheus /metrics; "" disables
  std::string metrics_listen = "127.0.0.1:" + std::to_string(kDefaultMetricsPort);
  std::string state_dir = "/var/lib/herd";
  std::map<std::string, std::string> labels;
  std::string log_format = "text";  // text | json
  std::string log_level = "info";
  std::string ready_file;  // written once both ports are bound
  ExecLimits exec;
  FileLimits files;
  AppsSettings apps;
  GrpcSettings grpc;
  HealthLimits health;
  TlsFiles tls;  // all empty: TlsFilesIn(<state_dir>/tls), made by enrolment
  std::chrono::milliseconds tls_reload{60'000};  // how often certificate files are re-read
  EnrollSettings enroll;
  bool plaintext = false;  // no TLS, every caller admin: refused unless listening on loopback
};

// Checks the values a config may hold (addresses with ports, positive
// durations, percentages, limits); errors name `source` and the key.
Status ValidateAgentConfig(const AgentConfig& c, const std::string& source);

// True for 127.0.0.0/8, ::1 and localhost listen addresses.
bool IsLoopbackAddress(const std::string& host_port);

// Loads YAML; errors name the file, line and key.
Result<AgentConfig> LoadAgentConfig(const std::string& path);
Result<AgentConfig> ParseAgentConfig(const std::string& yaml_text, const std::string& source);

}  // namespace herd::agent

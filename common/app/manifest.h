// An app's manifest: what app.yaml declares (checked strictly: unknown
// fields, wrong types and bad values are errors naming file:line and the
// field), plus what `herd app pack` measures (every file's path, mode, size
// and SHA-256; the payload's digest and its digests per 1 MiB chunk). Its
// canonical form is compact JSON with sorted keys: the bytes that are signed.
// Plain values; thread-safe.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"

namespace herd::app {

struct Probe {
  std::string type;                  // "" (none), "http", "tcp", "exec"
  std::string listen;                // http, tcp: the name of a `listen` socket
  std::string path = "/";            // http
  std::vector<std::string> command;  // exec
};

struct Probes {
  Probe startup, liveness;
  std::chrono::milliseconds start_grace{10'000}, startup_deadline{120'000},
      interval_starting{1'000}, interval_healthy{10'000}, timeout{2'000},
      healthy_before_commit{30'000};
  int failure_threshold = 3;
};

struct AppSpec {
  std::string name, version;
  uint64_t sequence = 0;
  std::vector<std::string> command;
  std::map<std::string, std::string> env;
  Probes probes;
  std::string restart = "on-failure";  // on-failure | always | never
  std::chrono::milliseconds stop_timeout{10'000};
  uint64_t memory_bytes = 0;  // 0: the device's limit
  uint64_t pids = 0;
  uint32_t cpu_share = 0;
  std::string network = "none";     // none | outbound
  std::vector<std::string> listen;  // named TCP sockets the app serves on
  uint32_t data_format = 1;
  std::vector<uint32_t> migrates_from;
};

struct FileEntry {
  std::string path;  // relative, canonical
  uint32_t mode = 0644;
  uint64_t size = 0;
  std::string sha256;
};

struct Manifest {
  AppSpec app;
  std::vector<FileEntry> files;  // sorted by path
  std::string payload_sha256;
  uint64_t payload_size = 0;
  uint64_t chunk_size = 1 << 20;
  std::vector<std::string> chunks;  // SHA-256 of each chunk_size piece of the payload
};

// app.yaml's text; `source` names it in errors.
Result<AppSpec> ParseAppYaml(const std::string& text, const std::string& source);

// The canonical JSON (the signed bytes), and back (strict, as for app.yaml).
std::string CanonicalJson(const Manifest& m);
Result<Manifest> ParseManifest(const std::string& json, const std::string& source);

// Why `name` is not an app name ("" when it is one): 1 to 63 of a-z, 0-9
// and '-', starting with a letter or digit.
std::string AppNameError(const std::string& name);
// Why `version` is not an app version ("" when it is one): 1 to 64
// printable characters, no spaces.
std::string AppVersionError(const std::string& version);

// Whether `path` is a relative path a bundle may hold: no empty, "." or ".."
// components, no leading '/', no NUL or control characters, at most 4096 bytes.
bool IsCanonicalPath(const std::string& path);

}  // namespace herd::app

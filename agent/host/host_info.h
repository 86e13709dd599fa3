// Reads host facts from /proc, uname, statvfs and os-release. Stateless
// functions; safe from any thread. Used by Facts, Health and the metrics.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "agent/config.h"

namespace herd::agent {

struct HostFacts {
  std::string hostname, os, kernel, arch;
  unsigned cpus = 0;
  uint64_t mem_total = 0, mem_available = 0;
  uint64_t disk_total = 0, disk_available = 0;  // filesystem of `path`
  double uptime = 0;
  double load1 = 0, load5 = 0, load15 = 0;
};

HostFacts ReadHostFacts(const std::string& path);

// This machine's host name ("" if it has none).
std::string HostName();

// CPU seconds by mode from /proc/stat (user, nice, system, idle, iowait, ...).
std::vector<std::pair<std::string, double>> ReadCpuSeconds();

struct Check {
  std::string name;
  bool ok;
  std::string detail;
};
// Health checks: state dir writable, disk space, memory, load.
std::vector<Check> RunHealthChecks(const std::string& state_dir, const HealthLimits& limits);

}  // namespace herd::agent

#include "agent/host/host_info.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/statvfs.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

namespace herd::agent {

std::string HostName() {
  char host[256] = {};
  return ::gethostname(host, sizeof(host) - 1) == 0 ? host : "";
}

HostFacts ReadHostFacts(const std::string& path) {
  HostFacts f;
  f.hostname = HostName();
  utsname u{};
  if (uname(&u) == 0) {
    f.kernel = u.release;
    f.arch = u.machine;
  }
  std::ifstream osr("/etc/os-release");
  for (std::string line; std::getline(osr, line);) {
    if (line.rfind("PRETTY_NAME=", 0) == 0) {
      f.os = line.substr(12);
      if (f.os.size() >= 2 && f.os.front() == '"') f.os = f.os.substr(1, f.os.size() - 2);
    }
  }
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  f.cpus = n > 0 ? static_cast<unsigned>(n) : 1;
  std::ifstream mem("/proc/meminfo");
  for (std::string key; mem >> key;) {
    uint64_t kb = 0;
    mem >> kb;
    if (key == "MemTotal:") f.mem_total = kb * 1024;
    if (key == "MemAvailable:") f.mem_available = kb * 1024;
    mem.ignore(64, '\n');
  }
  struct statvfs vfs {};
  if (statvfs(path.c_str(), &vfs) == 0) {
    f.disk_total = static_cast<uint64_t>(vfs.f_blocks) * vfs.f_frsize;
    f.disk_available = static_cast<uint64_t>(vfs.f_bavail) * vfs.f_frsize;
  }
  std::ifstream up("/proc/uptime");
  up >> f.uptime;
  std::ifstream load("/proc/loadavg");
  load >> f.load1 >> f.load5 >> f.load15;
  return f;
}

std::vector<std::pair<std::string, double>> ReadCpuSeconds() {
  static const char* kModes[] = {"user",   "nice", "system",  "idle",
                                 "iowait", "irq",  "softirq", "steal"};
  std::vector<std::pair<std::string, double>> out;
  std::ifstream stat("/proc/stat");
  std::string cpu;
  stat >> cpu;
  if (cpu != "cpu") return out;
  const double hz = static_cast<double>(sysconf(_SC_CLK_TCK));
  for (const char* m : kModes) {
    uint64_t ticks = 0;
    stat >> ticks;
    out.emplace_back(m, ticks / hz);
  }
  return out;
}

std::vector<Check> RunHealthChecks(const std::string& state_dir, const HealthLimits& limits) {
  std::vector<Check> checks;
  {
    std::string probe = state_dir + "/.health-probe";
    int fd = ::open(probe.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    bool ok = fd >= 0 && ::write(fd, "ok", 2) == 2;
    std::string err = ok ? "" : std::strerror(errno);
    if (fd >= 0) ::close(fd);
    ::unlink(probe.c_str());
    checks.push_back({"state_dir", ok, ok ? state_dir + " writable" : state_dir + ": " + err});
  }
  HostFacts f = ReadHostFacts(state_dir);
  if (f.disk_total > 0) {
    double free_pct = 100.0 * f.disk_available / f.disk_total;
    checks.push_back(
        {"disk", free_pct >= limits.min_disk_free_percent,
         fmt::format("{:.1f}% free (minimum {}%)", free_pct, limits.min_disk_free_percent)});
  }
  if (f.mem_total > 0) {
    double free_pct = 100.0 * f.mem_available / f.mem_total;
    checks.push_back({"memory", free_pct >= limits.min_memory_available_percent,
                      fmt::format("{:.1f}% available (minimum {}%)", free_pct,
                                  limits.min_memory_available_percent)});
  }
  checks.push_back({"load", f.load5 <= limits.max_load_per_cpu * f.cpus,
                    fmt::format("load5 {:.2f} on {} CPUs (maximum {} per CPU)", f.load5, f.cpus,
                                limits.max_load_per_cpu)});
  return checks;
}

}  // namespace herd::agent

// Supervisor's thread: restarts, probes, log rotation (supervisor.h); and
// what it reports.
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <spdlog/spdlog.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>

#include "agent/apps/app_process.h"
#include "agent/apps/sandbox.h"
#include "agent/apps/supervisor.h"

namespace herd::agent {
namespace {

using SteadyClock = std::chrono::steady_clock;
using ms = std::chrono::milliseconds;

constexpr ms kIdleWait{5'000};  // the longest sleep: log rotation looks this often

}  // namespace

void Supervisor::Loop() {
  ::pthread_setname_np(::pthread_self(), "herdd-apps");
  while (!stop_) {
    std::vector<pollfd> fds{{wake_.get(), POLLIN, 0}};
    auto wait = kIdleWait;
    {
      std::lock_guard<std::mutex> l(mu_);
      const auto now = SteadyClock::now();
      for (const auto& [name, p] : procs_) {
        if (p->pid > 0 && p->pidfd.valid()) fds.push_back({p->pidfd.get(), POLLIN, 0});
        for (const auto& at :
             {p->restart_at, p->kill_at,
              p->pid > 0 && !p->held ? std::optional(p->next_probe) : std::nullopt}) {
          if (at) wait = std::min(wait, std::chrono::duration_cast<ms>(*at - now));
        }
      }
    }
    if (wait.count() > 0) ::poll(fds.data(), fds.size(), static_cast<int>(wait.count()) + 1);
    uint64_t n;
    while (::read(wake_.get(), &n, sizeof n) > 0) {
    }
    if (!stop_) Tick();
  }
}

void Supervisor::Tick() {
  struct Due {
    std::string name;
    app::Probe probe;
    ms timeout;
    bool startup;
  };
  std::vector<Due> due;
  {
    std::lock_guard<std::mutex> l(mu_);
    const auto now = SteadyClock::now();
    for (auto& [name, pp] : procs_) {
      Proc& p = *pp;
      Reap(name, p);
      if (p.held || p.stopping) continue;
      if (p.pid > 0 && p.kill_at && now >= *p.kill_at) {
        ::kill(p.child > 0 ? p.child : -p.pid, SIGKILL);
        ::kill(-p.pid, SIGKILL);
        p.kill_at.reset();
      }
      if (p.pid <= 0 && p.enabled && p.restart_at && now >= *p.restart_at) {
        if (Status s = StartLocked(name, p, p.seq); !s.ok()) {
          spdlog::warn("apps: cannot start {}: {}", name, s.message());
          p.health = {"blocked", "start-failed"};
          p.restart_at = p.policy ? p.policy->Ended(now, true) : std::nullopt;
        } else {
          p.health = {"waiting", "restarted"};
        }
      }
      if (p.pid > 0 && !p.kill_at && now >= p.next_probe) {
        const bool startup = p.health.state != "okay";
        const auto& probes = p.spec.probes;
        due.push_back({name,
                       startup && !probes.startup.type.empty() ? probes.startup : probes.liveness,
                       probes.timeout, startup});
        p.next_probe = now + (startup ? probes.interval_starting : probes.interval_healthy);
      }
      RotateLog(LogPath(name), settings_.max_log_bytes);
    }
  }
  for (const Due& d : due) {
    const ProbeResult r = RunProbe(d.name, d.probe, d.timeout);
    std::lock_guard<std::mutex> l(mu_);
    auto it = procs_.find(d.name);
    if (it == procs_.end() || it->second->held || it->second->pid <= 0) continue;
    Proc& p = *it->second;
    const auto now = SteadyClock::now();
    const auto& probes = p.spec.probes;
    if (r.ok) {
      p.failures = 0;
      if (p.policy && p.policy->crash_looping()) {
        // Up again, but it has failed too often, too fast: the report stays
        // until a run lasts long enough to reset the backoff.
        p.health = {"error", "crash-loop"};
        p.next_probe = now + probes.interval_healthy;
        continue;
      }
      if (p.health.state != "okay") spdlog::info("apps: {} is healthy", d.name);
      p.health = {"okay", r.reason};
      p.next_probe = now + probes.interval_healthy;
      continue;
    }
    ++p.health_failures;
    ++p.by_reason[r.reason];
    const bool in_grace = d.startup && now - p.started < probes.start_grace;
    if (!in_grace) ++p.failures;
    const bool deadline = d.startup && now - p.started > probes.startup_deadline;
    if (p.failures >= probes.failure_threshold || deadline) {
      const std::string why = deadline ? "startup-deadline" : r.reason;
      spdlog::warn("apps: {} is unhealthy ({}): restarting it", d.name, why);
      p.health = {"error", why};
      ::kill(p.child > 0 ? p.child : -p.pid, SIGTERM);
      p.kill_at = now + p.spec.stop_timeout;
      p.failures = 0;
    } else if (p.health.state == "okay") {
      p.health = {"okay", "probe-failed-" + r.reason};
    } else {
      p.health = {"waiting", r.reason};
    }
  }
}

ProbeResult Supervisor::ExecProbe(const std::string& name, const app::Probe& probe, ms timeout) {
  app::AppSpec spec;
  uint64_t seq = 0;
  {
    std::lock_guard<std::mutex> l(mu_);
    auto it = procs_.find(name);
    if (it == procs_.end()) return {false, "not-running"};
    spec = it->second->spec;
    seq = it->second->seq;
  }
  spec.command = probe.command;
  std::vector<UniqueFd> fds;
  auto s = SandboxFor(name, seq, spec, &fds);
  if (!s.ok()) return {false, "exec-setup"};
  UniqueFd null(::open("/dev/null", O_WRONLY | O_CLOEXEC));
  s->log_fd = null.get();
  Account account;
  auto launch = SandboxLaunch(*s, &account);
  if (!launch.ok()) return {false, "exec-setup"};
  auto child = launcher_.Launch(*launch);
  if (!child.ok()) return {false, "exec-setup"};
  pollfd p{child->pidfd.get(), POLLIN, 0};
  const bool ended = ::poll(&p, 1, static_cast<int>(timeout.count())) > 0;
  if (!ended) ::kill(-child->pid, SIGKILL);
  int st = 0;
  ::waitpid(child->pid, &st, 0);
  if (!ended) return {false, "timeout"};
  if (WIFEXITED(st) && WEXITSTATUS(st) == 0) return {true, "ok"};
  return {false, WIFEXITED(st) ? "exit-" + std::to_string(WEXITSTATUS(st)) : "signal"};
}

AppProcessInfo Supervisor::InfoLocked(const std::string& name, const Proc& p) const {
  AppProcessInfo i;
  i.name = name;
  i.version = p.spec.version;
  i.running = p.pid > 0 ? p.seq : 0;
  i.pid = p.pid;
  i.child_pid = p.child;
  i.started_unix = p.pid > 0 ? p.started_unix : 0;
  i.restarts = p.policy ? p.policy->restarts() : 0;
  i.crash_loop = p.policy && p.policy->crash_looping();
  i.held = p.held;
  i.health = p.health;
  i.last_exit = p.last_exit;
  i.limits = p.pid > 0 ? p.limits : cgroups_.mode();
  if (p.child > 0) {
    const ProcUsage u = UsageOf(p.child);
    // The whole group's memory where there is one, else the app's main process.
    const uint64_t group = p.limits == "rlimit" ? 0 : cgroups_.MemoryBytes(p.cgroup);
    i.rss_bytes = group ? group : u.rss_bytes;
    i.cpu_seconds = u.cpu_seconds;
  }
  i.health_failures = p.health_failures;
  i.failures_by_reason = p.by_reason;
  return i;
}

std::vector<AppProcessInfo> Supervisor::List() {
  std::lock_guard<std::mutex> l(mu_);
  std::vector<AppProcessInfo> out;
  for (const auto& [name, p] : procs_) out.push_back(InfoLocked(name, *p));
  return out;
}

std::optional<AppProcessInfo> Supervisor::Info(const std::string& name) {
  std::lock_guard<std::mutex> l(mu_);
  auto it = procs_.find(name);
  if (it == procs_.end()) return std::nullopt;
  return InfoLocked(name, *it->second);
}

}  // namespace herd::agent

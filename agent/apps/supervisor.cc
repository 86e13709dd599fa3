#include "agent/apps/supervisor.h"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <spdlog/spdlog.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstring>
#include <ctime>
#include <map>
#include <set>

#include "agent/apps/app_process.h"
#include "agent/apps/sandbox.h"

namespace herd::agent {
namespace {

using SteadyClock = std::chrono::steady_clock;
using ms = std::chrono::milliseconds;

UniqueFd PidFd(pid_t pid) { return UniqueFd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0))); }

// Waits up to `timeout` for the process behind `pidfd` to end.
bool WaitGone(int pidfd, ms timeout) {
  if (pidfd < 0) return false;
  pollfd p{pidfd, POLLIN, 0};
  return ::poll(&p, 1, static_cast<int>(timeout.count())) > 0;
}

// The restart policy of an app whose app.yaml says `mode`, with the
// device's backoff; none for a mode RestartPolicy refuses (app.yaml checked it).
std::optional<RestartPolicy> PolicyFor(const AppsSettings& s, const std::string& mode) {
  RestartPolicy::Settings rs;
  rs.mode = mode;
  rs.first_delay = s.restart_backoff;
  rs.max_delay = s.restart_backoff_max;
  auto policy = RestartPolicy::Make(rs);
  if (!policy.ok()) return std::nullopt;
  return std::move(*policy);
}

std::string ExitReason(int code) {
  return code > 128 ? "signal-" + std::to_string(code - 128) : "exited-" + std::to_string(code);
}

}  // namespace

Supervisor::Supervisor(const AppsSettings& settings, AppStore& store, AppDb& db,
                       ProcessLauncher& launcher)
    : settings_(settings),
      store_(store),
      db_(db),
      launcher_(launcher),
      wake_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {}

Supervisor::~Supervisor() { Shutdown(); }

std::string Supervisor::LogPath(const std::string& name) const {
  return store_.dir() + "/" + name + "/run/output.log";
}

void Supervisor::KillStrays(const std::vector<AppRecord>& apps) {
  std::set<uid_t> uids;
  std::map<uid_t, std::string> app_of;
  for (const AppRecord& r : apps) {
    if (r.pid > 0 && ProcStartTime(static_cast<pid_t>(r.pid)) == r.pid_start) continue;
    if (auto uid = store_.AppUid(r.name); uid.ok()) {
      uids.insert(*uid);
      app_of[*uid] = r.name;
    }
  }
  size_t left = 0;
  for (const auto& [pid, uid] : KillProcessesOf(uids, ms(5'000), &left)) {
    spdlog::warn(
        "apps: {}: pid {} runs as its uid {} but no record names it (a herdd ended "
        "between starting it and writing it down): killed",
        app_of[uid], pid, uid);
  }
  if (left) spdlog::error("apps: {} stray processes did not end", left);
}

void Supervisor::Open(const std::set<std::string>& held) {
  const auto now = SteadyClock::now();
  std::lock_guard<std::mutex> l(mu_);
  const std::vector<AppRecord> apps = db_.Apps();
  KillStrays(apps);
  for (const AppRecord& r : apps) {
    auto p = std::make_unique<Proc>();
    p->held = held.count(r.name) > 0;
    p->enabled = r.enabled;
    p->seq = r.running ? r.running : r.current;
    if (auto spec = InstalledSpec(store_.dir(), r.name, p->seq); spec.ok()) p->spec = *spec;
    p->policy = PolicyFor(settings_, p->spec.restart);
    if (r.pid > 0 && ProcStartTime(static_cast<pid_t>(r.pid)) == r.pid_start) {
      p->pid = static_cast<pid_t>(r.pid);
      p->child = static_cast<pid_t>(r.child_pid);
      p->pid_start = r.pid_start;
      if (auto uid = store_.AppUid(r.name); uid.ok()) {
        p->cgroup = r.name + "." + std::to_string(*uid);
        p->limits = cgroups_.mode();
      }
      p->pidfd = PidFd(p->pid);
      p->started_unix = r.started_unix;
      p->started =
          now - std::chrono::seconds(std::max<int64_t>(0, std::time(nullptr) - r.started_unix));
      p->health = {"waiting", "taken-over"};
      p->next_probe = now;
      if (p->policy) p->policy->Started(p->started);
      spdlog::info("apps: {} (sequence {}) still runs as pid {}: taken over", r.name, p->seq,
                   p->pid);
    } else {
      if (r.pid > 0) {
        AppRecord gone = r;
        gone.pid = gone.pid_start = gone.child_pid = 0;
        gone.running = 0;
        (void)db_.SetProcess(gone);
        const auto code = StatusExitCode(p->run_dir(store_.dir(), r.name) + "/status.json");
        p->last_exit = code ? ExitReason(*code) : "ended";
      }
      if (p->enabled && r.current != 0 && !p->held) p->restart_at = now;
    }
    procs_[r.name] = std::move(p);
  }
  thread_ = std::thread([this] { Loop(); });
}

void Supervisor::Shutdown() {
  stop_ = true;
  Wake();
  if (thread_.joinable()) thread_.join();
}

void Supervisor::Wake() {
  const uint64_t one = 1;
  (void)!::write(wake_.get(), &one, sizeof one);
}

Status Supervisor::StartLocked(const std::string& name, Proc& p, uint64_t seq) {
  if (std::string closed = ClosedAncestor(store_.dir()); !closed.empty()) {
    return Status(StatusCode::kFailedPrecondition,
                  "apps cannot reach their files: " + closed +
                      " is closed to other users (it needs o+x, as 0711)");
  }
  auto spec = InstalledSpec(store_.dir(), name, seq);
  if (!spec.ok()) return spec.status();
  const std::string run = p.run_dir(store_.dir(), name);
  if (::mkdir(run.c_str(), 0700) != 0 && errno != EEXIST) {
    return Status::Internal("cannot create " + run + ": " + std::strerror(errno));
  }
  std::vector<UniqueFd> fds;
  auto sandbox = SandboxFor(name, seq, *spec, &fds);
  if (!sandbox.ok()) return sandbox.status();
  SandboxSpec& s = *sandbox;
  UniqueFd log(
      ::open((run + "/output.log").c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600));
  UniqueFd status(
      ::open((run + "/status.json").c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  if (!log.valid() || !status.valid()) {
    return Status::Internal("app " + name + ": cannot open " + run + ": " + std::strerror(errno));
  }
  s.status_fd = status.get();
  s.log_fd = log.get();
  for (const auto& l : spec->listen) {
    auto port = store_.AppPort(name, l);
    if (!port.ok()) return port.status();
    auto sock = ListenSocket(settings_.listen_address, *port);
    if (!sock.ok()) return sock.status();
    s.listen_fds.push_back(sock->get());
    s.listen_names.push_back(l);
    fds.push_back(std::move(*sock));
  }
  Account account;
  auto launch = SandboxLaunch(s, &account);
  if (!launch.ok()) return launch.status();
  // cgroups where the host has them; rlimits always.
  // Named by app and uid: agents sharing a host (a local fleet) never share one.
  p.cgroup = name + "." + std::to_string(s.uid);
  auto groups = cgroups_.Prepare(p.cgroup, s.memory_bytes, s.pids);
  p.limits = groups.ok() ? cgroups_.mode() : "rlimit";
  if (!groups.ok()) {
    spdlog::warn("apps: {}: no cgroup limits, rlimits only: {}", name, groups.status().message());
  } else {
    for (const auto& fd : *groups) launch->join_fds.push_back(fd.get());
  }
  auto child = launcher_.Launch(*launch);
  if (!child.ok()) return child.status();
  CrashPoint("app:launched");  // running, but on no record yet (KillStrays)
  p.pid = child->pid;
  p.pidfd = std::move(child->pidfd);
  p.ours = true;
  p.pid_start = ProcStartTime(p.pid);
  // bwrap names the app's pid once the sandbox is set up (bounded wait).
  p.child = 0;
  for (int i = 0; i < 500 && p.child == 0; ++i) {
    p.child = static_cast<pid_t>(StatusChildPid(run + "/status.json"));
    if (p.child == 0 && WaitGone(p.pidfd.get(), ms(10))) break;
  }
  p.seq = seq;
  p.spec = std::move(*spec);
  p.started = SteadyClock::now();
  p.started_unix = std::time(nullptr);
  p.next_probe = p.started;
  p.failures = 0;
  p.kill_at.reset();
  p.restart_at.reset();
  p.stopping = false;
  p.health = {"waiting", "starting"};
  if (!p.policy) p.policy = PolicyFor(settings_, p.spec.restart);
  if (p.policy) p.policy->Started(p.started);
  AppRecord r;
  r.name = name;
  r.pid = p.pid;
  r.pid_start = p.pid_start;
  r.child_pid = p.child;
  r.running = seq;
  r.started_unix = p.started_unix;
  if (Status st = db_.SetProcess(r); !st.ok()) spdlog::warn("apps: {}", st.message());
  spdlog::info("apps: started {} {} (sequence {}) as pid {} (app pid {})", name, p.spec.version,
               seq, p.pid, p.child);
  Wake();
  return Status::Ok();
}

Result<SandboxSpec> Supervisor::SandboxFor(const std::string& name, uint64_t seq,
                                           const app::AppSpec& spec, std::vector<UniqueFd>* fds) {
  auto uid = store_.AppUid(name);
  if (!uid.ok()) return uid.status();
  auto data = store_.DataDir(name);
  if (!data.ok()) return data.status();
  const std::string files = store_.dir() + "/" + name + "/" + std::to_string(seq) + "/files";
  UniqueFd files_fd(::open(files.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  UniqueFd data_fd(::open(data->c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!files_fd.valid() || !data_fd.valid()) {
    return Status::Internal("app " + name + ": cannot open its folders: " + std::strerror(errno));
  }
  SandboxSpec s;
  s.name = name;
  s.files_fd = files_fd.get();
  s.data_fd = data_fd.get();
  fds->push_back(std::move(files_fd));
  fds->push_back(std::move(data_fd));
  s.uid = *uid;
  s.gid = *uid;
  s.network = spec.network == "outbound" && settings_.allow_outbound;
  s.command = spec.command;
  s.env = spec.env;
  s.memory_bytes = spec.memory_bytes ? spec.memory_bytes : settings_.max_memory;
  s.pids = spec.pids ? spec.pids : settings_.max_pids;
  return s;
}

Status Supervisor::Start(const std::string& name, uint64_t seq) {
  std::lock_guard<std::mutex> l(mu_);
  auto& p = procs_[name];
  if (!p) p = std::make_unique<Proc>();
  Reap(name, *p);
  if (p->pid > 0) {
    return Status(StatusCode::kFailedPrecondition, "app " + name + " is running already");
  }
  Status s = StartLocked(name, *p, seq);
  if (!s.ok()) p->health = {"blocked", "start-failed"};
  return s;
}

void Supervisor::Reap(const std::string& name, Proc& p) {
  if (p.pid <= 0) return;
  bool gone = false;
  int code = -1;
  if (p.ours) {
    int st = 0;
    const pid_t r = ::waitpid(p.pid, &st, WNOHANG);
    if (r == p.pid) {
      gone = true;
      code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    } else if (r < 0 && errno == ECHILD) {
      gone = true;
    }
  } else {
    gone = WaitGone(p.pidfd.get(), ms(0)) || ProcStartTime(p.pid) != p.pid_start;
    // Taken over by the same process (a restart in place): still its child.
    int st = 0;
    if (gone && ::waitpid(p.pid, &st, WNOHANG) == p.pid && WIFEXITED(st)) code = WEXITSTATUS(st);
  }
  if (!gone) return;
  if (auto c = StatusExitCode(p.run_dir(store_.dir(), name) + "/status.json")) code = *c;
  p.last_exit = code >= 0 ? ExitReason(code) : "ended";
  p.pid = p.child = 0;
  p.pidfd.Close();
  if (!p.cgroup.empty()) cgroups_.Remove(p.cgroup);
  AppRecord r;
  r.name = name;
  (void)db_.SetProcess(r);
  OnEnded(name, p);
}

void Supervisor::OnEnded(const std::string& name, Proc& p) {
  if (p.stopping || p.held) return;
  const auto now = SteadyClock::now();
  const bool failed = p.last_exit != "exited-0";
  spdlog::warn("apps: {} ended ({})", name, p.last_exit);
  p.restart_at = p.enabled && p.policy ? p.policy->Ended(now, failed) : std::nullopt;
  p.health = {"error", p.policy && p.policy->crash_looping() ? "crash-loop" : p.last_exit};
  if (!p.restart_at) p.health = {failed ? "error" : "waiting", p.last_exit};
}

Status Supervisor::Stop(const std::string& name) {
  UniqueFd pidfd;
  pid_t child = 0, pid = 0;
  ms timeout{10'000};
  {
    std::lock_guard<std::mutex> l(mu_);
    auto it = procs_.find(name);
    if (it == procs_.end()) return Status::Ok();
    Proc& p = *it->second;
    Reap(name, p);
    p.restart_at.reset();
    if (p.pid <= 0) return Status::Ok();
    p.stopping = true;
    pid = p.pid;
    child = p.child;
    timeout = p.spec.stop_timeout;
    pidfd = UniqueFd(::dup(p.pidfd.get()));
  }
  // pid 1 of a namespace gets the signals it has a handler for.
  ::kill(child > 0 ? child : -pid, SIGTERM);
  if (!WaitGone(pidfd.get(), timeout)) {
    spdlog::warn("apps: {} still runs {} ms after SIGTERM: SIGKILL", name, timeout.count());
    if (child > 0) ::kill(child, SIGKILL);  // and with it its whole namespace
    ::kill(-pid, SIGKILL);
    WaitGone(pidfd.get(), ms(10'000));
  }
  std::lock_guard<std::mutex> l(mu_);
  Proc& p = *procs_[name];
  Reap(name, p);
  p.stopping = false;
  p.health = {"waiting", "stopped"};
  if (p.pid > 0) return Status::Internal("app " + name + " did not stop");
  spdlog::info("apps: stopped {}", name);
  return Status::Ok();
}

void Supervisor::Hold(const std::string& name, bool held) {
  std::lock_guard<std::mutex> l(mu_);
  auto& p = procs_[name];
  if (!p) p = std::make_unique<Proc>();
  p->held = held;
  Wake();
}

void Supervisor::Forget(const std::string& name) {
  std::lock_guard<std::mutex> l(mu_);
  procs_.erase(name);
}

void Supervisor::Committed(const std::string& name) {
  std::lock_guard<std::mutex> l(mu_);
  auto it = procs_.find(name);
  if (it == procs_.end()) return;
  Proc& p = *it->second;
  p.enabled = true;
  p.held = false;
  p.failures = 0;
  // The committed version's restart mode, from a clean slate.
  p.policy = PolicyFor(settings_, p.spec.restart);
  if (p.policy) p.policy->Started(p.started);
  p.health = {"okay", "ok"};
  p.next_probe = SteadyClock::now() + p.spec.probes.interval_healthy;
  Wake();
}

std::string Supervisor::Ended(const std::string& name) {
  std::lock_guard<std::mutex> l(mu_);
  auto it = procs_.find(name);
  if (it == procs_.end()) return "not-running";
  Reap(name, *it->second);
  return it->second->pid > 0             ? ""
         : it->second->last_exit.empty() ? "not-running"
                                         : it->second->last_exit;
}

ProbeResult Supervisor::Probe(const std::string& name, bool startup) {
  app::Probe probe;
  ms timeout{2'000};
  {
    std::lock_guard<std::mutex> l(mu_);
    auto it = procs_.find(name);
    if (it == procs_.end() || it->second->pid <= 0) return {false, "not-running"};
    const auto& probes = it->second->spec.probes;
    probe = startup && !probes.startup.type.empty() ? probes.startup : probes.liveness;
    timeout = probes.timeout;
  }
  ProbeResult r = RunProbe(name, probe, timeout);
  if (!r.ok) {
    std::lock_guard<std::mutex> l(mu_);
    if (auto it = procs_.find(name); it != procs_.end()) {
      ++it->second->health_failures;
      ++it->second->by_reason[r.reason];
    }
  }
  return r;
}

ProbeResult Supervisor::RunProbe(const std::string& name, const app::Probe& probe, ms timeout) {
  if (probe.type.empty()) return {true, "running"};
  if (probe.type == "exec") return ExecProbe(name, probe, timeout);
  auto port = store_.AppPort(name, probe.listen);
  if (!port.ok()) return {false, "no-port"};
  const std::string host =
      settings_.listen_address == "0.0.0.0" ? "127.0.0.1" : settings_.listen_address;
  return probe.type == "http" ? ProbeHttp(host, *port, probe.path, timeout)
                              : ProbeTcp(host, *port, timeout);
}

}  // namespace herd::agent

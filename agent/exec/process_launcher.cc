#include "agent/exec/process_launcher.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/text.h"

extern char** environ;

namespace herd::agent {
namespace {

std::vector<char*> CStrings(const std::vector<std::string>& v) {
  std::vector<char*> out;
  out.reserve(v.size() + 1);
  for (const auto& s : v) out.push_back(const_cast<char*>(s.c_str()));
  out.push_back(nullptr);
  return out;
}

// What a child that could not exec reports on its error pipe.
struct ChildFailure {
  int step;  // 0 exec, 1 account, 2 working directory, 3 resource limit
  int error;
};

class ForkLauncher final : public ProcessLauncher {
 public:
  Result<Child> Launch(const LaunchSpec& spec) override {
    if (spec.argv.empty() || spec.argv[0].empty()) return Status::Invalid("empty command");
    int in[2], out[2], err[2], report[2];
    if (::pipe2(in, O_CLOEXEC) != 0) return PipeError();
    UniqueFd in_r(in[0]), in_w(in[1]);
    if (::pipe2(out, O_CLOEXEC) != 0) return PipeError();
    UniqueFd out_r(out[0]), out_w(out[1]);
    if (::pipe2(err, O_CLOEXEC) != 0) return PipeError();
    UniqueFd err_r(err[0]), err_w(err[1]);
    if (::pipe2(report, O_CLOEXEC) != 0) return PipeError();
    UniqueFd report_r(report[0]), report_w(report[1]);

    // Everything the child needs is prepared here: after the fork it may
    // only make async-signal-safe calls.
    auto cargv = CStrings(spec.argv);
    auto cenv = CStrings(spec.env);
    const Account* who = spec.account && !spec.account->is_agent ? spec.account : nullptr;
    const char* cwd = spec.cwd.empty() ? nullptr : spec.cwd.c_str();
    std::vector<std::pair<__rlimit_resource_t, rlim_t>> rlimits;
    for (const auto& [resource, value] : spec.rlimits) {
      rlimits.emplace_back(static_cast<__rlimit_resource_t>(resource), static_cast<rlim_t>(value));
    }
    auto moved = spec.map_fds;
    UniqueFd null_fd;
    int null_in = -1;
    if (spec.stdout_fd >= 0) {
      null_fd = UniqueFd(::open("/dev/null", O_RDONLY | O_CLOEXEC));
      null_in = null_fd.get();
    }
    sigset_t all, saved;
    sigfillset(&all);
    ::pthread_sigmask(SIG_SETMASK, &all, &saved);  // no handler runs in the child
    const pid_t pid = ::_Fork();
    if (pid == 0) {
      struct sigaction dfl {};
      dfl.sa_handler = SIG_DFL;
      for (int s = 1; s < NSIG; ++s) ::sigaction(s, &dfl, nullptr);
      ::setpgid(0, 0);
      ::dup2(spec.stdout_fd >= 0 ? null_in : in_r.get(), 0);
      ::dup2(spec.stdout_fd >= 0 ? spec.stdout_fd : out_w.get(), 1);
      ::dup2(spec.stderr_fd >= 0 ? spec.stderr_fd : err_w.get(), 2);
      ChildFailure f{1, 0};
      for (int fd : spec.pass_fds) {
        if (fd > 2) ::fcntl(fd, F_SETFD, 0);
      }
      // Out of the way of every target first, then into place (dup2
      // clears close-on-exec on the copy).
      for (size_t i = 0; i < moved.size(); ++i) {
        moved[i].first = ::fcntl(moved[i].first, F_DUPFD_CLOEXEC, 1024);
      }
      for (const auto& [from, to] : moved) ::dup2(from, to);
      for (const auto& [resource, value] : rlimits) {
        const struct rlimit r { value, value };
        if (::setrlimit(resource, &r) != 0) f = {3, errno};
      }
      for (int fd : spec.join_fds) {
        if (::write(fd, "0", 1) != 1) f = {3, errno};
      }
      if (f.step == 3) {
        // reported below
      } else if (who && (::syscall(SYS_setgroups, who->groups.size(), who->groups.data()) != 0 ||
                         ::syscall(SYS_setresgid, who->gid, who->gid, who->gid) != 0 ||
                         ::syscall(SYS_setresuid, who->uid, who->uid, who->uid) != 0)) {
        f.error = errno;
      } else if (cwd && ::chdir(cwd) != 0) {
        f = {2, errno};
      } else {
        sigset_t none;
        sigemptyset(&none);
        ::sigprocmask(SIG_SETMASK, &none, nullptr);
        ::execvpe(cargv[0], cargv.data(), cenv.data());
        f = {0, errno};
      }
      (void)!::write(report_w.get(), &f, sizeof f);
      ::_exit(127);
    }
    const int fork_errno = errno;
    ::pthread_sigmask(SIG_SETMASK, &saved, nullptr);
    if (pid < 0) return Status::Internal(std::string("fork: ") + std::strerror(fork_errno));
    report_w.Close();
    ChildFailure f{};
    ssize_t n;
    do {
      n = ::read(report_r.get(), &f, sizeof f);
    } while (n < 0 && errno == EINTR);
    if (n == static_cast<ssize_t>(sizeof f)) {
      int status;
      ::waitpid(pid, &status, 0);
      const std::string program = Excerpt(spec.argv[0], 200);
      if (f.step == 0 && f.error == ENOENT)
        return Status::NotFound("command not found: " + program);
      if (f.step == 1) {
        return Status(StatusCode::kFailedPrecondition, "cannot switch to account " +
                                                           (who ? who->name : std::string("?")) +
                                                           ": " + std::strerror(f.error));
      }
      if (f.step == 3) {
        return Status(
            StatusCode::kFailedPrecondition,
            std::string("cannot set a resource limit or join a cgroup: ") + std::strerror(f.error));
      }
      if (f.step == 2) {
        return Status(
            StatusCode::kFailedPrecondition,
            "working directory " + Excerpt(spec.cwd, 200) + ": " + std::strerror(f.error));
      }
      return Status::Internal(program + ": " + std::strerror(f.error));
    }
    Child child;
    child.pid = pid;
    if (spec.stdout_fd < 0) {
      child.stdin_w = std::move(in_w);
      child.stdout_r = std::move(out_r);
      child.stderr_r = std::move(err_r);
    }
    child.pidfd = UniqueFd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
    return child;
  }

 private:
  static Status PipeError() {
    return Status::Internal(std::string("pipe: ") + std::strerror(errno));
  }
};

}  // namespace

ProcessLauncher& ProcessLauncher::Real() {
  static ForkLauncher launcher;
  return launcher;
}

std::vector<std::string> MergeEnvironment(const std::map<std::string, std::string>& extra,
                                          const Account* account) {
  std::map<std::string, std::string> set;
  if (account) set = {{"HOME", account->home}, {"USER", account->name}, {"LOGNAME", account->name}};
  for (const auto& [k, v] : extra) set[k] = v;
  std::vector<std::string> env;
  for (char** e = environ; e && *e; ++e) {
    std::string kv = *e;
    auto eq = kv.find('=');
    if (eq != std::string::npos && set.count(kv.substr(0, eq))) continue;
    env.push_back(std::move(kv));
  }
  for (const auto& [k, v] : set) env.push_back(k + "=" + v);
  return env;
}

}  // namespace herd::agent

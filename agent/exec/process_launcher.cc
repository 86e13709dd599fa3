#include "agent/exec/process_launcher.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/syscall.h>
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

class PosixSpawnLauncher final : public ProcessLauncher {
 public:
  Result<Child> Launch(const LaunchSpec& spec) override {
    if (spec.argv.empty() || spec.argv[0].empty()) return Status::Invalid("empty command");
    int in[2], out[2], err[2];
    if (::pipe2(in, O_CLOEXEC) != 0) return PipeError();
    UniqueFd in_r(in[0]), in_w(in[1]);
    if (::pipe2(out, O_CLOEXEC) != 0) return PipeError();
    UniqueFd out_r(out[0]), out_w(out[1]);
    if (::pipe2(err, O_CLOEXEC) != 0) return PipeError();
    UniqueFd err_r(err[0]), err_w(err[1]);

    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, in_r.get(), 0);
    posix_spawn_file_actions_adddup2(&fa, out_w.get(), 1);
    posix_spawn_file_actions_adddup2(&fa, err_w.get(), 2);
    if (!spec.cwd.empty()) posix_spawn_file_actions_addchdir_np(&fa, spec.cwd.c_str());
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    sigset_t none, defaults;
    sigemptyset(&none);
    sigemptyset(&defaults);
    for (int s : {SIGPIPE, SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGCHLD}) sigaddset(&defaults, s);
    posix_spawnattr_setsigmask(&attr, &none);         // the agent blocks TERM/INT/HUP
    posix_spawnattr_setsigdefault(&attr, &defaults);  // and ignores PIPE
    posix_spawnattr_setpgroup(&attr, 0);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK |
                                        POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_USEVFORK);
    auto cargv = CStrings(spec.argv);
    auto cenv = CStrings(spec.env);
    pid_t pid = 0;
    const int rc = ::posix_spawnp(&pid, cargv[0], &fa, &attr, cargv.data(), cenv.data());
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    if (rc != 0) {
      if (rc == ENOENT) return Status::NotFound("command not found: " + Excerpt(spec.argv[0], 200));
      return Status::Internal(Excerpt(spec.argv[0], 200) + ": " + std::strerror(rc));
    }
    Child child;
    child.pid = pid;
    child.stdin_w = std::move(in_w);
    child.stdout_r = std::move(out_r);
    child.stderr_r = std::move(err_r);
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
  static PosixSpawnLauncher launcher;
  return launcher;
}

std::vector<std::string> MergeEnvironment(const std::map<std::string, std::string>& extra) {
  std::vector<std::string> env;
  for (char** e = environ; e && *e; ++e) {
    std::string kv = *e;
    auto eq = kv.find('=');
    if (eq != std::string::npos && extra.count(kv.substr(0, eq))) continue;
    env.push_back(std::move(kv));
  }
  for (const auto& [k, v] : extra) env.push_back(k + "=" + v);
  return env;
}

}  // namespace herd::agent

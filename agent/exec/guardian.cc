#include "agent/exec/guardian.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <set>

namespace herd::agent {
namespace {

// The guardian's life: collect the groups herdd reports, kill those left
// when herdd's end of the pipe closes. Only what a forked child of a
// (single-threaded) process may do: no locks, no threads.
[[noreturn]] void Guard(int in) {
  ::prctl(PR_SET_NAME, "herdd-guard");
  for (int s : {SIGTERM, SIGINT, SIGHUP, SIGPIPE}) ::signal(s, SIG_IGN);
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  std::set<pid_t> groups;
  char buf[4096];
  std::string pending;
  for (;;) {
    const ssize_t n = ::read(in, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;  // herdd is gone
    pending.append(buf, static_cast<size_t>(n));
    size_t nl;
    while ((nl = pending.find('\n')) != std::string::npos) {
      const std::string rec = pending.substr(0, nl);
      pending.erase(0, nl + 1);
      if (rec.size() < 2) continue;
      const pid_t pgid = static_cast<pid_t>(std::atol(rec.c_str() + 1));
      if (pgid <= 1) continue;
      if (rec[0] == '+') groups.insert(pgid);
      if (rec[0] == '-') groups.erase(pgid);
    }
  }
  for (pid_t g : groups) ::kill(-g, SIGKILL);
  ::_exit(0);
}

}  // namespace

Result<std::unique_ptr<Guardian>> Guardian::Start() {
  int p[2];
  if (::pipe2(p, O_CLOEXEC) != 0) {
    return Status::Internal(std::string("guardian pipe: ") + std::strerror(errno));
  }
  // Forked twice, so that init adopts it: herdd never has to reap it, not
  // even after a restart in place (the same pid, a new image).
  const pid_t pid = ::fork();
  if (pid < 0) {
    ::close(p[0]);
    ::close(p[1]);
    return Status::Internal(std::string("cannot start the guardian: ") + std::strerror(errno));
  }
  if (pid == 0) {
    ::close(p[1]);
    if (::fork() == 0) Guard(p[0]);
    ::_exit(0);
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  ::close(p[0]);
  // herdd never waits on it: a full pipe drops a record rather than block.
  ::fcntl(p[1], F_SETFL, O_NONBLOCK);
  return std::unique_ptr<Guardian>(new Guardian(UniqueFd(p[1])));
}

void Guardian::Send(char op, pid_t pgid) {
  char rec[32];
  const int n = std::snprintf(rec, sizeof rec, "%c%d\n", op, static_cast<int>(pgid));
  // One write of a few bytes: atomic on a pipe.
  (void)!::write(pipe_.get(), rec, static_cast<size_t>(n));
}

void Guardian::Watch(pid_t pgid) { Send('+', pgid); }
void Guardian::Forget(pid_t pgid) { Send('-', pgid); }

}  // namespace herd::agent

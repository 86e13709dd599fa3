#include "agent/exec/exec_runner.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>

#include "common/text.h"

namespace herd::agent {

using Clock = std::chrono::steady_clock;

struct ExecRunner::Job {
  std::atomic<pid_t> pgid{0};
  std::atomic<bool> cancel{false};
  std::atomic<bool> paused{false};  // the receiver holds enough: pipes left unread
  int wake_fd[2] = {-1, -1};        // written by Cancel/KillAll/Resume to wake the worker's poll
};

ExecRunner::~ExecRunner() { KillAll(); }

int ExecRunner::running() const {
  std::lock_guard<std::mutex> l(mu_);
  return static_cast<int>(jobs_.size());
}

Result<uint64_t> ExecRunner::Start(ExecSpec spec, OutputFn on_output, DoneFn on_done,
                                   const std::function<void()>& on_admitted) {
  auto job = std::make_shared<Job>();
  uint64_t id;
  {
    std::lock_guard<std::mutex> l(mu_);
    if (stopping_) return Status(StatusCode::kUnavailable, "agent is shutting down");
    if (static_cast<int>(jobs_.size()) >= max_concurrent_) {
      return Status(StatusCode::kResourceExhausted,
                    "too many commands running (" + std::to_string(max_concurrent_) + ")");
    }
    if (::pipe2(job->wake_fd, O_CLOEXEC | O_NONBLOCK) != 0) {
      return Status::Internal(std::string("pipe: ") + std::strerror(errno));
    }
    id = next_id_++;
    jobs_[id] = job;
  }
  if (on_admitted) on_admitted();
  std::thread([this, id, job, spec = std::move(spec), on_output = std::move(on_output),
               on_done = std::move(on_done)]() mutable {
    Work(job, std::move(spec), std::move(on_output), std::move(on_done));
    // Out of the map before its wake pipe closes: Cancel, Resume and
    // KillAll write to the pipe of a job they find there, and a closed
    // descriptor's number may already belong to another file.
    std::lock_guard<std::mutex> l(mu_);
    jobs_.erase(id);
    ::close(job->wake_fd[0]);
    ::close(job->wake_fd[1]);
    idle_.notify_all();
  }).detach();
  return id;
}

void ExecRunner::Cancel(uint64_t id) {
  std::lock_guard<std::mutex> l(mu_);
  auto it = jobs_.find(id);
  if (it == jobs_.end()) return;
  it->second->cancel = true;
  char c = 1;
  (void)!::write(it->second->wake_fd[1], &c, 1);
}

void ExecRunner::Resume(uint64_t id) {
  std::lock_guard<std::mutex> l(mu_);
  auto it = jobs_.find(id);
  if (it == jobs_.end()) return;
  it->second->paused = false;
  char c = 1;
  (void)!::write(it->second->wake_fd[1], &c, 1);
}

void ExecRunner::KillAll() {
  std::unique_lock<std::mutex> l(mu_);
  stopping_ = true;
  for (auto& [id, job] : jobs_) {
    job->cancel = true;
    char c = 1;
    (void)!::write(job->wake_fd[1], &c, 1);
  }
  idle_.wait(l, [&] { return jobs_.empty(); });
}

void ExecRunner::Work(std::shared_ptr<Job> job, ExecSpec spec, OutputFn on_output, DoneFn on_done) {
  const auto t0 = Clock::now();
  ExecOutcome out;
  auto finish = [&] {
    out.duration = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0);
    on_done(std::move(out));
  };

  LaunchSpec launch;
  launch.argv =
      spec.shell.empty() ? spec.argv : std::vector<std::string>{"/bin/sh", "-c", spec.shell};
  if (launch.argv.empty() || launch.argv[0].empty()) {
    out.error = "empty command";
    return finish();
  }
  launch.env = MergeEnvironment(spec.env, spec.account);
  launch.cwd = spec.cwd;
  launch.account = spec.account;
  auto child = launcher_.Launch(launch);
  if (!child.ok()) {
    out.exit_code = -1;  // never started: no exit status (agent.proto)
    out.error = child.status().message();
    return finish();
  }
  job->pgid = child->pid;
  if (guardian_) guardian_->Watch(child->pid);
  const pid_t pid = child->pid;
  UniqueFd& in_w = child->stdin_w;
  UniqueFd& out_r = child->stdout_r;
  UniqueFd& err_r = child->stderr_r;
  UniqueFd& pidfd = child->pidfd;

  // The stdin payload is written through a non-blocking pipe as poll allows.
  size_t in_off = 0;
  ::fcntl(in_w.get(), F_SETFL, O_NONBLOCK);
  if (spec.stdin_data.empty()) in_w.Close();

  const auto deadline = t0 + spec.timeout;
  Clock::time_point kill_at = Clock::time_point::max();
  bool termed = false, killed = false, exited = false;
  uint64_t sent[2] = {0, 0};
  std::string buf(64 * 1024, '\0');

  auto terminate = [&](bool timeout) {
    if (termed) return;
    termed = true;
    out.timed_out = out.timed_out || timeout;
    ::kill(-pid, SIGTERM);
    kill_at = Clock::now() + spec.kill_grace;
  };
  // One read of `fd`: kept up to the cap, handed over; false at its end
  // (or, when `drain`, when nothing is there now: a background process may
  // hold the pipe open after the command is gone).
  auto read_stream = [&](UniqueFd& fd, bool is_err, bool drain) {
    ssize_t n = ::read(fd.get(), buf.data(), buf.size());
    if (n <= 0) {
      if (n == 0 || drain || (errno != EINTR && errno != EAGAIN)) fd.Close();
      return;
    }
    uint64_t& s = sent[is_err ? 1 : 0];
    const size_t keep = static_cast<size_t>(
        std::min<uint64_t>(n, s >= spec.max_output_bytes ? 0 : spec.max_output_bytes - s));
    if (keep < static_cast<size_t>(n)) out.truncated = true;
    s += keep;
    if (keep && !on_output(is_err, std::string(buf.data(), keep))) job->paused = true;
  };

  for (;;) {
    auto now = Clock::now();
    if (!exited) {
      if (!termed && now >= deadline) terminate(true);
      if (job->cancel && !termed) terminate(false);
      if (termed && !killed && now >= kill_at) {
        killed = true;
        ::kill(-pid, SIGKILL);
      }
    } else {
      // The command is gone: take what its pipes still hold, as fast as the
      // receiver takes it; if nobody reads any more, drop it.
      if (job->cancel) break;
      for (UniqueFd* fd : {&out_r, &err_r}) {
        if (fd->valid()) ::fcntl(fd->get(), F_SETFL, O_NONBLOCK);
        for (int i = 0; i < 4096 && fd->valid() && !job->paused; ++i) {
          read_stream(*fd, fd == &err_r, true);
        }
      }
      if (!out_r.valid() && !err_r.valid()) break;
    }
    const bool reading = !job->paused;
    pollfd fds[5];
    int nfds = 0;
    auto add = [&](int fd, short ev) {
      fds[nfds].fd = fd;
      fds[nfds].events = ev;
      fds[nfds].revents = 0;
      return nfds++;
    };
    int i_out = reading && !exited && out_r.valid() ? add(out_r.get(), POLLIN) : -1;
    int i_err = reading && !exited && err_r.valid() ? add(err_r.get(), POLLIN) : -1;
    int i_in = !exited && in_w.valid() ? add(in_w.get(), POLLOUT) : -1;
    int i_pid = !exited && pidfd.valid() ? add(pidfd.get(), POLLIN) : -1;
    int i_wake = add(job->wake_fd[0], POLLIN);
    auto next_event =
        termed && !killed ? kill_at : (termed ? now + std::chrono::seconds(1) : deadline);
    if (exited) next_event = now + std::chrono::seconds(1);
    if (!pidfd.valid()) next_event = std::min(next_event, now + std::chrono::milliseconds(20));
    auto wait_ms = std::chrono::duration_cast<std::chrono::milliseconds>(next_event - now).count();
    int rc = ::poll(fds, nfds, static_cast<int>(std::clamp<long long>(wait_ms + 1, 0, 60'000)));
    if (rc < 0 && errno != EINTR) break;
    if (i_wake >= 0 && (fds[i_wake].revents & POLLIN)) {
      char drain[16];
      while (::read(job->wake_fd[0], drain, sizeof drain) > 0) {
      }
    }
    if (exited) continue;
    if (i_out >= 0 && fds[i_out].revents) read_stream(out_r, false, false);
    if (i_err >= 0 && fds[i_err].revents) read_stream(err_r, true, false);
    if (i_in >= 0 && fds[i_in].revents) {
      ssize_t n =
          ::write(in_w.get(), spec.stdin_data.data() + in_off, spec.stdin_data.size() - in_off);
      if (n > 0) in_off += n;
      if ((n < 0 && errno != EAGAIN) || in_off >= spec.stdin_data.size()) in_w.Close();
    }
    if ((i_pid >= 0 && fds[i_pid].revents) || !pidfd.valid()) {
      int status = 0;
      if (::waitpid(pid, &status, WNOHANG) == pid) {
        exited = true;
        if (WIFEXITED(status)) {
          out.exit_code = WEXITSTATUS(status);
        } else if (WIFSIGNALED(status)) {
          out.signal = WTERMSIG(status);
          out.exit_code = -1;
        }
      }
    }
  }
  if (!exited) {
    ::kill(-pid, SIGKILL);
    int status = 0;
    ::waitpid(pid, &status, 0);
  }
  if (guardian_) guardian_->Forget(pid);
  finish();
}

}  // namespace herd::agent

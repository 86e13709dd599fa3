// herd mux start / stop / status: the mux's life as a background process.
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <thread>

#include "control/mux.h"
#include "proto/rpc/grpc_runtime.h"

namespace herd::control {
namespace {

// Set by SIGTERM in a background mux.
std::atomic<bool> g_stop_background{false};
void OnTerm(int) { g_stop_background.store(true); }

// Polls (bounded: 100 times, 0.1 s apart) until `done` holds.
template <class Fn>
bool PollFor(Fn done) {
  for (int i = 0; i < 100; ++i) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return done();
}

}  // namespace

MuxState MuxStatus(const std::string& socket_path) { return {MuxPid(socket_path), socket_path}; }

Result<MuxState> StartMux(const MuxOptions& opts, bool foreground, const std::atomic<bool>* stop) {
  MuxState state = MuxStatus(opts.socket_path);
  if (state.pid != 0) {
    state.already_running = true;
    return state;
  }
  if (foreground) {
    if (Status s = RunMux(opts, stop); !s.ok()) return s;
    return MuxStatus(opts.socket_path);
  }
  // Background: a child in its own session, detached from the terminal.
  const pid_t child = ::fork();
  if (child < 0) return Status::Internal(std::string("cannot fork: ") + std::strerror(errno));
  if (child == 0) {
    ::setsid();
    const int null = ::open("/dev/null", O_RDWR);
    if (null >= 0) {
      ::dup2(null, 0);
      ::dup2(null, 1);
      ::dup2(null, 2);
      if (null > 2) ::close(null);
    }
    ::signal(SIGTERM, OnTerm);
    ::signal(SIGINT, SIG_IGN);
    ::signal(SIGHUP, SIG_IGN);
    rpc::InitGrpcRuntime();
    ::_exit(RunMux(opts, &g_stop_background).ok() ? 0 : 1);
  }
  // Until its socket answers, or the child has given up.
  bool exited = false;
  PollFor([&] {
    int status = 0;
    exited = exited || ::waitpid(child, &status, WNOHANG) == child;
    return exited || MuxPid(opts.socket_path) != 0;
  });
  state = MuxStatus(opts.socket_path);
  if (state.pid == 0) {
    return Status(StatusCode::kUnavailable,
                  "the mux did not start (socket " + opts.socket_path +
                      (exited ? "; it exited at once: try 'herd mux start --foreground'" : "") +
                      ")");
  }
  return state;
}

Result<MuxState> StopMux(const std::string& socket_path) {
  MuxState state = MuxStatus(socket_path);
  if (state.pid == 0) return Status::NotFound("no mux is running");
  ::kill(state.pid, SIGTERM);
  if (!PollFor([&] { return MuxPid(socket_path) == 0; })) {
    return Status(StatusCode::kUnavailable,
                  "the mux (pid " + std::to_string(state.pid) + ") did not stop");
  }
  return MuxStatus(socket_path);
}

}  // namespace herd::control

// Sandbox start cost: the same command started RUNS times directly, as the
// app's uid, with the process launcher herdd uses, and in the app sandbox
// exactly as herdd builds it (agent/apps/sandbox.h), each run waited for.
// Prints the medians and their ratio. Needs root (apps run as their own
// uid). A benchmark: it asserts nothing.
//
//   build/bench/herd_bench_sandbox [RUNS] [COMMAND...]   default: 20 /bin/true
#include <fcntl.h>
#include <pwd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "agent/apps/sandbox.h"
#include "agent/exec/process_launcher.h"

using herd::agent::Account;
using herd::agent::LaunchSpec;
using herd::agent::ProcessLauncher;
using Clock = std::chrono::steady_clock;

namespace {

constexpr uid_t kUid = 64999;  // not an account of this machine (the bench checks)

double RunOnce(const LaunchSpec& spec) {
  const auto t0 = Clock::now();
  auto child = ProcessLauncher::Real().Launch(spec);
  if (!child.ok()) {
    std::fprintf(stderr, "bench: %s\n", child.status().message().c_str());
    std::exit(1);
  }
  int status = 0;
  ::waitpid(child->pid, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    std::fprintf(stderr, "bench: the command failed (status %d)\n", status);
    std::exit(1);
  }
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  if (::geteuid() != 0) {
    std::fprintf(stderr, "bench: needs root (apps run as a uid of their own)\n");
    return 1;
  }
  if (::getpwuid(kUid)) {
    std::fprintf(stderr, "bench: uid %u is an account here; the bench needs a free uid\n", kUid);
    return 1;
  }
  const int runs = argc > 1 ? std::atoi(argv[1]) : 20;
  if (runs < 1 || runs > 10000) {
    std::fprintf(stderr, "usage: herd_bench_sandbox [RUNS 1-10000] [COMMAND...]\n");
    return 1;
  }
  std::vector<std::string> command = {"/bin/true"};
  if (argc > 2) command.assign(argv + 2, argv + argc);

  char tmpl[] = "/tmp/herd-bench-sandbox.XXXXXX";
  const std::string dir = ::mkdtemp(tmpl);
  ::chmod(dir.c_str(), 0711);
  std::filesystem::create_directories(dir + "/files");
  std::filesystem::create_directories(dir + "/data");
  ::chown((dir + "/data").c_str(), kUid, kUid);
  const int files = ::open((dir + "/files").c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
  const int data = ::open((dir + "/data").c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
  const int null = ::open("/dev/null", O_WRONLY | O_CLOEXEC);

  herd::agent::SandboxSpec s;
  s.name = "bench";
  s.files_fd = files;
  s.data_fd = data;
  s.uid = s.gid = kUid;
  s.command = command;
  s.memory_bytes = 512ull << 20;
  s.pids = 64;
  s.log_fd = null;
  Account sandbox_account;
  auto sandboxed = herd::agent::SandboxLaunch(s, &sandbox_account);
  if (!sandboxed.ok()) {
    std::fprintf(stderr, "bench: %s\n", sandboxed.status().message().c_str());
    return 1;
  }
  LaunchSpec direct;
  direct.argv = command;
  direct.env = {"PATH=/usr/local/bin:/usr/bin:/bin"};
  direct.cwd = "/";
  direct.account = &sandbox_account;
  direct.stdout_fd = direct.stderr_fd = null;

  std::vector<double> d, b;
  for (int i = 0; i < runs; ++i) {  // interleaved: both see the same machine
    d.push_back(RunOnce(direct));
    b.push_back(RunOnce(*sandboxed));
  }
  std::filesystem::remove_all(dir);
  const double md = Median(d), mb = Median(b);
  std::printf("command: %s (%d runs each, median)\n", command[0].c_str(), runs);
  std::printf("direct (as the app's uid):  %8.2f ms\n", md);
  std::printf("in the sandbox (bwrap):     %8.2f ms\n", mb);
  std::printf("sandbox / direct:           %8.1fx   (+%.2f ms per start)\n", mb / md, mb - md);
  return 0;
}

#include "cmd/herd/cli.h"

#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>

#include "control/fanout.h"
#include "control/hostlist.h"
#include "control/pki_store.h"
#include "control/revocation.h"
#include "control/session.h"

namespace herd::cli {
namespace {

std::atomic<bool> g_interrupted{false};

void OnSigint(int) {
  g_interrupted.store(true);
  ::signal(SIGINT, SIG_DFL);  // a second Ctrl-C ends herd at once
}

void RaiseFdLimit() {
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
}

// Hosts that answered with an older revocation list than the PKI folder's
// get the folder's: a device that was offline, or enrolled before a
// revocation, catches up on the next command that reaches it.
void CatchUpRevocations(const Globals& g, control::Executor& executor,
                        const std::vector<const control::Host*>& hosts,
                        const std::vector<control::HostResult>& results,
                        std::chrono::milliseconds timeout) {
  auto list = control::LoadRevocations(control::ResolvePkiDir(g.pki_dir));
  if (!list.ok()) {
    std::fprintf(stderr, "herd: warning: %s\n", list.status().message().c_str());
    return;
  }
  const auto c = control::PushRevocationsWhereBehind(executor, hosts, results, *list, timeout);
  if (!c.updated.empty() && !g.quiet) {
    std::fprintf(stderr,
                 "herd: revocation list version %llu passed on to %s (they held an older one)\n",
                 static_cast<unsigned long long>(c.version), control::FoldHosts(c.updated).c_str());
  }
  if (!c.failed.empty()) {
    std::fprintf(stderr, "herd: warning: revocation list version %llu not taken by %s\n",
                 static_cast<unsigned long long>(c.version), control::FoldHosts(c.failed).c_str());
  }
}

}  // namespace

int Fail(const std::string& msg) {
  std::fprintf(stderr, "herd: error: %s\n", msg.c_str());
  return static_cast<int>(control::ExitCode::kHerdError);
}

void CatchInterrupt() {
  ::signal(SIGINT, OnSigint);
  ::signal(SIGPIPE, SIG_IGN);
}

const std::atomic<bool>& Interrupted() { return g_interrupted; }

bool IsAppRef(const std::string& arg) {
  if (::access(arg.c_str(), F_OK) == 0) return false;
  return arg.find('/') == std::string::npos &&
         (arg.size() < 5 || arg.compare(arg.size() - 5, 5, ".herd") != 0);
}

rpc::GrpcLogSink GrpcDebugLog() {
  const char* debug = std::getenv("HERD_DEBUG");
  if (!debug || !*debug || std::string(debug) == "0") return nullptr;
  return [](int, const std::string& msg) { std::fprintf(stderr, "herd: grpc: %s\n", msg.c_str()); };
}

control::OutputOptions Output(const Globals& g) {
  control::OutputOptions out;
  out.format = g.output == "json" ? control::OutputFormat::kJson
               : g.fold           ? control::OutputFormat::kFold
                                  : control::OutputFormat::kText;
  out.progress = !g.no_progress && ::isatty(STDERR_FILENO);
  out.summary = !g.quiet;
  return out;
}

int RunOnTargets(const Globals& g, const std::string& target,
                 std::chrono::milliseconds default_timeout, const Prepare& prepare,
                 bool catch_up_revocations, bool cancel_on_interrupt) {
  auto targets = control::SelectTargets(g.inventory, target, true, false, g.allow_empty);
  if (!targets.ok()) return Fail(targets.status().message());
  return RunOnHosts(g, std::move(*targets), default_timeout, prepare, catch_up_revocations,
                    cancel_on_interrupt);
}

int RunOnHosts(const Globals& g, control::Targets targets,
               std::chrono::milliseconds default_timeout, const Prepare& prepare,
               bool catch_up_revocations, bool cancel_on_interrupt) {
  auto timeout = control::ResolveTimeout(g.timeout, default_timeout);
  if (!timeout.ok()) return Fail(timeout.status().message());
  auto run = prepare(*timeout);
  if (!run.ok()) return Fail(run.status().message());
  rpc::InitGrpcRuntime(GrpcDebugLog());
  RaiseFdLimit();
  CatchInterrupt();
  auto factory = control::ConnectToAgents({g.pki_dir, g.identity, g.plaintext, g.no_mux});
  if (!factory.ok()) return Fail(factory.status().message());
  control::ExecutorOptions eo;
  eo.forks = g.forks;
  eo.interrupted = cancel_on_interrupt ? &g_interrupted : nullptr;
  control::LocalExecutor executor(**factory, eo);
  auto reporter = control::MakeReporter(Output(g));
  const auto results = (*run)(executor, targets.hosts, *reporter);
  if (catch_up_revocations && !g.plaintext && !g_interrupted.load()) {
    CatchUpRevocations(g, executor, targets.hosts, results, *timeout);
  }
  return static_cast<int>(control::ComputeExitCode(results));
}

int RunTaskOnTargets(const Globals& g, const std::string& target,
                     std::chrono::milliseconds default_timeout,
                     const std::function<Result<control::Task>(std::chrono::milliseconds)>& make) {
  const bool live_text = Output(g).format == control::OutputFormat::kText;
  return RunOnTargets(g, target, default_timeout,
                      [&](std::chrono::milliseconds timeout) -> Result<Operate> {
                        auto task = make(timeout);
                        if (!task.ok()) return task.status();
                        // Live text prints lines as they come; --fold and JSON keep them.
                        if (live_text) task->collect_output_bytes = 0;
                        auto shared = std::make_shared<control::Task>(std::move(*task));
                        return Operate([shared](control::Executor& executor,
                                                const std::vector<const control::Host*>& hosts,
                                                control::Reporter& reporter) {
                          return control::RunTask(executor, hosts, *shared, reporter);
                        });
                      });
}

}  // namespace herd::cli

// herd mux start | stop | status: warm mTLS connections between commands.
#include <signal.h>

#include <cstdio>

#include "cmd/herd/cli.h"
#include "common/duration.h"
#include "control/mux.h"
#include "control/pki_store.h"
#include "control/records.h"

namespace herd::cli {
namespace {

class Mux final : public CommandGroup {
 public:
  explicit Mux(Globals& g) : g_(g) {}

  void Add(CLI::App& app) override {
    auto* mux = app.add_subcommand(
        "mux", "Keep warm mTLS connections to agents between commands (like ssh ControlMaster)");
    mux->require_subcommand(1);
    start_ = mux->add_subcommand("start", "Start the mux for --identity in the background");
    start_->add_option("--idle", idle_, "Exit after this long without calls (default 10m)");
    start_->add_flag("--foreground", foreground_, "Serve in the foreground (Ctrl-C stops)");
    stop_ = mux->add_subcommand("stop", "Stop the mux for --identity");
    status_ =
        mux->add_subcommand("status", "Is a mux running for --identity? Exit 0 running, 3 not");
    mux->footer(
        "mux status exits 0 when running, 3 when not.\n"
        "While a mux runs for the identity in use, herd sends every call through it: one\n"
        "local connection instead of a TLS handshake per host. Agents still see and check\n"
        "the caller's own certificate on every call. --no-mux bypasses it.");
  }

  std::optional<int> Run() override {
    if (*start_) return Start();
    if (!*stop_ && !*status_) return std::nullopt;
    const std::string socket =
        control::MuxSocketPath(control::ResolvePkiDir(g_.pki_dir), g_.identity);
    auto out = control::MakeRecordWriter(Output(g_));
    if (*status_) {
      const control::MuxState state = control::MuxStatus(socket);
      out->Write(control::MuxRecord(g_.identity, state, state.pid ? "running" : "not running"));
      return static_cast<int>(state.pid ? control::ExitCode::kOk : control::ExitCode::kNotRunning);
    }
    auto stopped = control::StopMux(socket);
    if (stopped.status().code() == StatusCode::kNotFound) {
      return Fail("no mux is running for identity " + g_.identity);
    }
    if (!stopped.ok()) return Fail(stopped.status().message());
    out->Write(control::MuxRecord(g_.identity, *stopped, "stopped"));
    return 0;
  }

 private:
  int Start() {
    if (g_.plaintext) return Fail("the mux holds mTLS connections; it has no use with --plaintext");
    std::chrono::milliseconds idle{10 * 60 * 1000};
    if (!idle_.empty()) {
      auto d = ParseDuration(idle_);
      if (!d.ok()) return Fail("--idle: expects a duration such as 30m, got '" + idle_ + "'");
      if (d->count() <= 0) return Fail("--idle must be more than zero, e.g. 30m");
      idle = *d;
    }
    const std::string pki_dir = control::ResolvePkiDir(g_.pki_dir);
    auto id = rpc::LoadIdentity(pki_dir, g_.identity);
    if (!id.ok()) return Fail(id.status().message());
    control::MuxOptions opts{control::MuxSocketPath(pki_dir, g_.identity), std::move(*id), idle};
    auto out = control::MakeRecordWriter(Output(g_));
    if (control::MuxState running = control::MuxStatus(opts.socket_path); running.pid != 0) {
      out->Write(control::MuxRecord(g_.identity, running, "already running"));
      return 0;
    }
    if (foreground_) {
      CatchInterrupt();
      ::signal(SIGTERM, [](int) { ::raise(SIGINT); });
      rpc::InitGrpcRuntime(GrpcDebugLog());
      std::fprintf(stderr, "herd: mux for %s at %s (Ctrl-C stops)\n", g_.identity.c_str(),
                   opts.socket_path.c_str());
    }
    auto state = control::StartMux(opts, foreground_, &Interrupted());
    if (!state.ok()) return Fail(state.status().message());
    if (foreground_) return 0;
    if (state->already_running) {
      out->Write(control::MuxRecord(g_.identity, *state, "already running"));
    } else {
      out->Write(control::MuxRecord(g_.identity, *state, "running", FormatDuration(idle)));
    }
    return 0;
  }

  Globals& g_;
  CLI::App *start_ = nullptr, *stop_ = nullptr, *status_ = nullptr;
  std::string idle_;
  bool foreground_ = false;
};

}  // namespace

std::unique_ptr<CommandGroup> MuxCommands(Globals& g) { return std::make_unique<Mux>(g); }

}  // namespace herd::cli

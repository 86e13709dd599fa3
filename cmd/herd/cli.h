// The herd CLI's shared parts: the global flags, error reporting, and running
// a fan-out on a TARGET. Each command group is one file (fanout_commands.cc,
// inventory_commands.cc, pki_commands.cc, audit_command.cc,
// mux_commands.cc, app_commands.cc, rollout_command.cc,
// catalog_command.cc): it adds its subcommands and flags to the
// app, and runs the one the user chose by calling control/. Main thread only.
#pragma once

#include <CLI/CLI.hpp>
#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "control/executor.h"
#include "control/output.h"
#include "control/session.h"
#include "control/task.h"
#include "proto/rpc/grpc_runtime.h"

namespace herd::cli {

struct Globals {
  std::string inventory;
  std::string output = "text";
  bool fold = false;
  size_t forks = 128;
  std::string timeout;
  bool allow_empty = false;
  bool no_progress = false;
  bool quiet = false;
  std::string pki_dir;
  std::string identity = "admin";
  bool plaintext = false;
  bool no_mux = false;
};

// "herd: error: MSG" on stderr; returns the exit code of herd's own errors.
int Fail(const std::string& msg);

// Ctrl-C: the first sets the flag (calls in flight are cancelled), the
// second ends herd at once.
void CatchInterrupt();
const std::atomic<bool>& Interrupted();

// gRPC's own log lines (TLS handshake details and the like) only with
// HERD_DEBUG=1: herd reports every host's outcome in its own words.
rpc::GrpcLogSink GrpcDebugLog();

// How results and records print, from -o, --fold, --quiet, --no-progress.
control::OutputOptions Output(const Globals& g);

// A fan-out on `target`: selects the hosts (an empty TARGET is an error),
// resolves --timeout (`default_timeout` when not given), prepares the
// operation (reading local files; an error is herd's own), connects (mux or
// direct), runs it, and maps the results to an exit code.
using Operate = std::function<std::vector<control::HostResult>(
    control::Executor& executor, const std::vector<const control::Host*>& hosts,
    control::Reporter& reporter)>;
using Prepare = std::function<Result<Operate>(std::chrono::milliseconds timeout)>;
// Afterwards, unless `catch_up_revocations` is false, hosts whose replies
// showed an older revocation list than the PKI folder's get the folder's.
// `cancel_on_interrupt` false: Ctrl-C does not cancel calls in flight
// (the operation looks at Interrupted() itself, between steps).
int RunOnTargets(const Globals& g, const std::string& target,
                 std::chrono::milliseconds default_timeout, const Prepare& prepare,
                 bool catch_up_revocations = true, bool cancel_on_interrupt = true);
// The same on hosts selected already (`targets`).
int RunOnHosts(const Globals& g, control::Targets targets,
               std::chrono::milliseconds default_timeout, const Prepare& prepare,
               bool catch_up_revocations = true, bool cancel_on_interrupt = true);
// The same for a task made once the timeout is known.
int RunTaskOnTargets(const Globals& g, const std::string& target,
                     std::chrono::milliseconds default_timeout,
                     const std::function<Result<control::Task>(std::chrono::milliseconds)>& make);

// Whether a BUNDLE argument names an app in the hosts' catalogues
// (NAME[@VERSION]) rather than a file: no such file, no '/', no ".herd".
bool IsAppRef(const std::string& arg);

class CommandGroup {
 public:
  virtual ~CommandGroup() = default;
  // Adds the group's subcommands (and their flags) to `app`.
  virtual void Add(CLI::App& app) = 0;
  // The exit code of the group's parsed subcommand, or nothing when none of
  // them was chosen.
  virtual std::optional<int> Run() = 0;
  // The subcommands taking a TARGET: their help shows the selector grammar.
  virtual std::vector<CLI::App*> TargetCommands() const { return {}; }
};

std::unique_ptr<CommandGroup> FanoutCommands(Globals& g);     // ping run facts health copy
std::unique_ptr<CommandGroup> InventoryCommands(Globals& g);  // inventory targets
std::unique_ptr<CommandGroup> PkiCommands(Globals& g);        // ca cert enroll
std::unique_ptr<CommandGroup> AuditCommand(Globals& g);       // audit
std::unique_ptr<CommandGroup> MuxCommands(Globals& g);        // mux start|stop|status
std::unique_ptr<CommandGroup> AppCommands(
    Globals& g);  // app keygen|pack|sign|inspect|install, apps
std::unique_ptr<CommandGroup> RolloutCommand(Globals& g);  // rollout
std::unique_ptr<CommandGroup> CatalogCommand(Globals& g);
std::unique_ptr<CommandGroup> ApplyCommands(
    Globals& g);  // apply drift provision  // catalog init|add|list|show|serve

}  // namespace herd::cli

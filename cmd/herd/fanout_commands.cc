// herd ping | run | facts | health | copy: one operation on every host a
// TARGET selects.
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "cmd/herd/cli.h"
#include "common/defaults.h"
#include "control/tasks.h"

namespace herd::cli {
namespace {

// herd's own stdin, to its end, refused beyond `limit` bytes.
Result<std::string> ReadStdin(size_t limit) {
  std::string data;
  char buf[65536];
  for (;;) {
    const ssize_t n = ::read(STDIN_FILENO, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Status::Internal(std::string("cannot read stdin: ") + std::strerror(errno));
    if (n == 0) return data;
    data.append(buf, static_cast<size_t>(n));
    if (data.size() > limit) {
      return Status::Invalid("stdin is more than " + std::to_string(limit) +
                             " bytes: copy it with herd copy and let the command read the file, "
                             "or pass -n to forward nothing");
    }
  }
}

class Fanout final : public CommandGroup {
 public:
  explicit Fanout(Globals& g) : g_(g) {}

  void Add(CLI::App& app) override {
    ping_ = app.add_subcommand("ping", "Check that agents answer (round trip, version)");
    ping_->add_option("target", target_, "Hosts to ping (see TARGET below)")->required();

    run_ = app.add_subcommand("run", "Run a command on hosts: herd run TARGET -- CMD ARGS...");
    run_->add_option("target", target_, "Hosts to run on")->required();
    run_->add_option("command", command_.argv,
                     "Command and arguments, after --; run directly, no shell");
    run_->add_option("--shell", command_.shell, "Run this pipeline with /bin/sh -c instead of CMD");
    run_->add_option("-e,--env", command_.env, "Set an environment variable KEY=VALUE (repeatable)")
        ->allow_extra_args(false);
    run_->add_option("--cwd", command_.cwd,
                     "Working directory on the host (default: the home of the account it runs as)");
    run_->add_flag("-n,--no-stdin", no_stdin_,
                   "Do not forward herd's stdin (it is forwarded, up to 1 MiB, to the command on "
                   "every host when it is not a terminal)");
    run_->add_flag("--root", command_.root,
                   "Run as root, not as the device's exec.run_as account (the device must "
                   "allow it: exec.allow_root)");
    run_->add_option("--max-output", command_.max_output,
                     "Bytes of stdout and of stderr kept per host, 1 to 67108864 "
                     "(default 1048576; the rest is drained and dropped, the result says "
                     "truncated)");
    run_->footer(
        "Examples:\n  herd run all -- uptime\n  herd run @web --fold -- cat /etc/os-release"
        "\n  herd run 'role=db' --shell 'df -h / | tail -1'"
        "\n  herd run node07 -t 5s -e LANG=C -- ls -l /tmp\n\n"
        "Global flags (-t/--timeout, -o json, --fold, -f/--forks, -i, --identity, ...) may come\n"
        "before or after 'run'; everything after -- is the command. See herd --help.");

    facts_ = app.add_subcommand(
        "facts", "Show host facts: OS, kernel, CPUs, memory, disk, uptime, agent labels");
    facts_->add_option("target", target_, "Hosts")->required();

    health_ = app.add_subcommand("health", "Run the agents' health checks");
    health_->add_option("target", target_, "Hosts")->required();

    copy_ = app.add_subcommand("copy", "Copy a local file to hosts (checksummed, atomic)");
    copy_->add_option("target", target_, "Hosts")->required();
    copy_->add_option("src", src_, "Local file")->required();
    copy_->add_option("dst", dst_, "Absolute destination path on each host")->required();
    copy_->add_option("--mode", copy_spec_.mode,
                      "Permission bits in octal, e.g. 0644 (default: a replaced file keeps its "
                      "own; a new one gets SRC's)");
    copy_->add_option("--owner", copy_spec_.owner,
                      "User name or uid (default: a replaced file keeps its own; a new one "
                      "belongs to the account that writes it)");
    copy_->add_option("--group", copy_spec_.group, "Group name or gid (default: as --owner)");
    copy_->add_flag("--root", copy_spec_.root,
                    "Write as root, not as the device's exec.run_as account (the device must "
                    "allow it: exec.allow_root)");
    copy_->add_flag("--allow-setid", copy_spec_.allow_setid,
                    "Let the result be setuid, setgid or sticky (refused otherwise, also when "
                    "a replaced file had those bits)");
    copy_->footer(
        "Examples:\n  herd copy @web app.conf /etc/app/app.conf\n"
        "  herd copy all ./tool /usr/local/bin/tool --root --mode 0755 --owner root\n\n"
        "The file is streamed in 256 KiB chunks, checked against its SHA-256 and renamed into\n"
        "place: a reader sees the old file or the new one, never a mix.");
  }

  std::vector<CLI::App*> TargetCommands() const override {
    return {ping_, run_, facts_, health_, copy_};
  }

  std::optional<int> Run() override {
    using std::chrono::milliseconds;
    using Make = std::function<Result<control::Task>(milliseconds)>;
    Make make;
    milliseconds fallback = kDefaultHostTimeout;
    if (*ping_) make = control::PingTask;
    if (*facts_) make = control::FactsTask;
    if (*health_) make = control::HealthTask;
    if (*run_) {
      fallback = kDefaultCommandTimeout;
      if (!no_stdin_ && !::isatty(STDIN_FILENO)) {
        auto in = ReadStdin(control::kMaxStdin);
        if (!in.ok()) return Fail(in.status().message());
        command_.stdin_data = std::move(*in);
      }
      make = [this](milliseconds timeout) {
        command_.timeout = timeout;
        return control::ExecTask(command_);
      };
    }
    if (*copy_) {
      fallback = kDefaultCommandTimeout;
      make = [this](milliseconds timeout) {
        copy_spec_.src = src_;
        copy_spec_.dest = dst_;
        copy_spec_.timeout = timeout;
        return control::CopyTask(copy_spec_);
      };
    }
    if (!make) return std::nullopt;
    return RunTaskOnTargets(g_, target_, fallback, make);
  }

 private:
  Globals& g_;
  CLI::App *ping_ = nullptr, *run_ = nullptr, *facts_ = nullptr, *health_ = nullptr,
           *copy_ = nullptr;
  std::string target_;
  control::CommandSpec command_;
  std::string src_, dst_;
  bool no_stdin_ = false;
  control::CopySpec copy_spec_;
};

}  // namespace

std::unique_ptr<CommandGroup> FanoutCommands(Globals& g) { return std::make_unique<Fanout>(g); }

}  // namespace herd::cli

// herd: the fleet CLI. Declares the global flags, lets each command group add
// its subcommands, parses, and runs the chosen one. Everything a command does
// lives in control/; each group file only parses flags, calls it and returns
// an exit code (control::ExitCode, the README's table).
#include <CLI/CLI.hpp>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "cmd/herd/cli.h"
#include "common/defaults.h"

namespace herd::cli {
namespace {

const char* kSelectorHelp = R"(TARGET selects hosts from the inventory:
  all                every host           node*, web-?    name globs
  node[01-05,09]     numeric ranges       @web            a group
  role=web           label equals         zone!=eu        label differs (values may glob)
  A,B  union         A+B  intersection    A~B  A except B
  '+' binds tighter than ',', which binds tighter than '~'; ( ) group.
  Quote globs and parentheses for the shell: herd run 'node*~node03' -- uptime)";

const char* kExitHelp =
    R"(Exit codes: 0 all hosts ok, 1 herd's own error (flags, inventory, selector),
2 some host failed, 3 no mux running (mux status), 4 some host unreachable,
5 changes pending (apply --check, drift), 6 both 2 and 4, 130 interrupted.)";

// The first word on the command line that is neither an option nor an
// option's value: what the user meant as the command.
std::string FirstWord(CLI::App& app, int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--") break;
    if (a.size() > 1 && a[0] == '-') {
      const CLI::Option* o =
          a.find('=') == std::string::npos ? app.get_option_no_throw(a) : nullptr;
      if (o != nullptr && o->get_expected_min() > 0) ++i;  // skip its value
      continue;
    }
    return a;
  }
  return "";
}

// herd's own words for a command line CLI11 refused: prefixed like every other
// herd error, naming an unknown command, with a hint for run's -e.
int ParseFailure(CLI::App& app, const CLI::ParseError& e, int argc, char** argv) {
  std::string msg = e.what();
  const CLI::App* run = nullptr;
  for (const auto* sub : app.get_subcommands({})) {
    if (sub->get_name() == "run") run = sub;
  }
  if (app.get_subcommands().empty()) {
    const std::string word = FirstWord(app, argc, argv);
    if (word == "help") {
      std::printf("%s", app.help().c_str());
      return 0;
    }
    std::string names;
    for (const auto* sub : app.get_subcommands({})) {
      names += (names.empty() ? "" : ", ") + sub->get_name();
    }
    msg = word.empty() ? "no command given" : "unknown command '" + word + "'";
    msg += "; commands: " + names;
  } else if (run && run->parsed() && dynamic_cast<const CLI::ExtrasError*>(&e) != nullptr) {
    msg += " (one KEY=VALUE per -e: -e A=1 -e B=2; the command goes after --)";
  }
  std::fprintf(stderr, "herd: error: %s\nRun 'herd --help', or 'herd COMMAND --help', for more.\n",
               msg.c_str());
  return static_cast<int>(control::ExitCode::kHerdError);
}

int Main(int argc, char** argv) {
  Globals g;
  CLI::App app{"herd: fan commands out across a fleet of herdd agents.", "herd"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("herd ") + HERD_VERSION);
  app.add_option("-i,--inventory", g.inventory, "Inventory YAML file")->envname("HERD_INVENTORY");
  app.add_option("-o,--output", g.output, "Output format: text or json (JSON Lines)")
      ->check(CLI::IsMember({"text", "json"}));
  app.add_flag("--fold", g.fold, "Group hosts with identical output: node[01-05,09]");
  app.add_option("-f,--forks", g.forks, "Hosts contacted at once (default 128)")
      ->check(CLI::Range(1, 100000));
  app.add_option("-t,--timeout", g.timeout,
                 "Deadline per host, e.g. 500ms, 10s, 2m (default " +
                     std::to_string(kDefaultHostTimeout.count() / 1000) + "s; run and copy " +
                     std::to_string(kDefaultCommandTimeout.count() / 1000) + "s)");
  app.add_flag("--allow-empty", g.allow_empty, "A TARGET that matches no host is not an error");
  app.add_flag("--no-progress", g.no_progress, "No live progress line on stderr");
  app.add_flag("-q,--quiet", g.quiet, "No summary line at the end");
  app.add_option("--identity", g.identity,
                 "Client certificate NAME.crt/NAME.key in the PKI folder (default admin)")
      ->envname("HERD_IDENTITY");
  app.add_flag("--plaintext", g.plaintext,
               "No TLS: only for agents started with --plaintext (loopback development)");
  app.add_option("--pki-dir", g.pki_dir, "Credential folder (default ~/.config/herd/pki)")
      ->envname("HERD_PKI_DIR");
  app.add_flag("--no-mux", g.no_mux, "Dial agents directly even if a mux is running");

  std::vector<std::unique_ptr<CommandGroup>> groups;
  groups.push_back(FanoutCommands(g));
  groups.push_back(InventoryCommands(g));
  groups.push_back(AuditCommand(g));
  groups.push_back(PkiCommands(g));
  groups.push_back(MuxCommands(g));
  groups.push_back(AppCommands(g));
  groups.push_back(RolloutCommand(g));
  groups.push_back(CatalogCommand(g));
  groups.push_back(ApplyCommands(g));
  for (auto& group : groups) group->Add(app);

  // Footers are set last: CLI11 copies the parent's footer into subcommands
  // made after it. The selector grammar goes where a TARGET is taken.
  const std::string target_help = std::string("\n") + kSelectorHelp + "\n\n" + kExitHelp +
                                  "\n\nInventory: -i FILE, else $HERD_INVENTORY, else "
                                  "~/.config/herd/inventory.yaml. See README.md.";
  app.footer(target_help);
  for (auto& group : groups) {
    for (CLI::App* sub : group->TargetCommands()) {
      const std::string own = sub->get_footer();
      sub->footer(own.empty() ? target_help : own + "\n" + target_help);
    }
  }
  // Global flags may come after the subcommand too.
  for (auto* sub : app.get_subcommands({})) {
    sub->fallthrough();
    for (auto* nested : sub->get_subcommands({})) nested->fallthrough();
  }

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);  // --help, --version
    return ParseFailure(app, e, argc, argv);
  }
  for (auto& group : groups) {
    if (auto code = group->Run()) return *code;
  }
  return Fail("no command given");
}

}  // namespace
}  // namespace herd::cli

int main(int argc, char** argv) { return herd::cli::Main(argc, argv); }

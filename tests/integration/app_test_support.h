// What the app tests share (app_install_test.cc, app_resume_test.cc,
// app_activate_test.cc, app_crash_test.cc, rollout_test.cc, catalog_test.cc): a publisher with
// small bundles, the sample app's bundles and an agent config for them, a small fleet of agents
// running it, rollouts run on it, and readers of what `herd apps` says. Header-only, for the
// integration tests alone.
#pragma once

#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cerrno>
#include <filesystem>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>

#include "tests/support/test_support.h"

namespace herd::testing::apps {

using namespace std::chrono_literals;
using nlohmann::json;
namespace fs = std::filesystem;

inline bool CanRunApps() {
  if (::geteuid() != 0) {
    WARN("skipped: apps run as uids of their own, which needs root");
    return false;
  }
  if (::access("/usr/bin/bwrap", X_OK) != 0 || ::access("/usr/bin/python3", X_OK) != 0) {
    WARN("skipped: no bwrap or python3 (scripts/install-deps.sh installs both)");
    return false;
  }
  return true;
}

// A publisher key, sample bundles signed with it, and agent configs that
// trust it.
struct Publisher {
  ScopedTempDir dir;
  Publisher() {
    auto k = RunHerd({"app", "keygen", "acme", "--dir", dir.path()});
    REQUIRE(k.exit_code == 0);
  }
  // notes at `sequence`, packed and (unless `sign` is false) signed.
  std::string Bundle(int sequence, bool sign = true, const std::string& extra = "") {
    const std::string src = dir / ("notes-" + std::to_string(sequence));
    fs::create_directories(src);
    WriteFile(src + "/app.yaml", "name: notes\nversion: \"1." + std::to_string(sequence) +
                                     "\"\nsequence: " + std::to_string(sequence) +
                                     "\ncommand: [/bin/sh, run.sh]\n" + extra);
    WriteFile(src + "/run.sh", "echo version " + std::to_string(sequence) + "\n");
    const std::string out = src + ".herd";
    auto pack = RunHerd({"app", "pack", src, "-o", out});
    INFO(pack.err);
    REQUIRE(pack.exit_code == 0);
    if (sign) REQUIRE(RunHerd({"app", "sign", out, "--key", dir / "acme.key"}).exit_code == 0);
    return out;
  }
  // Uids of this test process alone (tests run in parallel, and an agent
  // kills the processes of its apps' uids that it does not know).
  std::string Config(const std::string& extra = "") {
    const std::string path = dir / "agent.yaml";
    WriteFile(path, "exec: {run_as: root}\napps:\n  publishers: [" + dir / "acme.pub" +
                        "]\n  uid_base: " + std::to_string(71000 + ::getpid() % 2000 * 8) +
                        "\n  uid_count: 8\n" + extra);
    return path;
  }
};

// One agent on `config` (node1) and an inventory naming it.
struct OneDevice {
  AgentProcess agent;
  ScopedTempDir dir;
  std::string inv;
  explicit OneDevice(const std::string& config) : agent("node1", {"--config", config}) {
    REQUIRE(agent.ready());
    inv = WriteInventory(dir, {&agent});
  }
};

// The sample app's three bundles, signed with a fresh key, and an agent
// config trusting it, with uids and ports of this test process alone
// (tests run in parallel); the apps' processes are killed at the end (they
// outlive their herdd by design).
struct Notes {
  ScopedTempDir dir;
  int uid_base = 0, port = 0;
  Notes() {
    // herdd's apps folder must be reachable by the apps' uids (as /var/lib is).
    REQUIRE(::chmod(dir.path().c_str(), 0711) == 0);
    const int slot = static_cast<int>(::getpid() % 2000);
    uid_base = 63000 + slot * 4;
    port = 21000 + slot * 4;
    auto b = RunProgram("bash", {SourceDir() + "/examples/notes/build.sh", dir.path()}, 60s,
                        {{"HERD", HerdBinary()}});
    INFO(b.out << b.err);
    REQUIRE(b.exit_code == 0);
  }
  ~Notes() {
    std::string uids;
    for (int i = 0; i < 4; ++i) uids += (i ? "," : "") + std::to_string(uid_base + i);
    (void)RunProgram("pkill", {"-KILL", "-U", uids}, 10s);
    // Their cgroups (empty once the processes are gone), where herd made them.
    std::error_code ec;
    for (const char* root : {"/sys/fs/cgroup/memory/herd-apps", "/sys/fs/cgroup/pids/herd-apps",
                             "/sys/fs/cgroup/herd-apps"}) {
      for (int i = 0; i < 4; ++i) {
        const std::string group = std::string(root) + "/notes." + std::to_string(uid_base + i);
        const std::string flaky = std::string(root) + "/flaky." + std::to_string(uid_base + i);
        WaitFor(
            [&] {
              return (::rmdir(group.c_str()) == 0 || errno == ENOENT) &&
                     (::rmdir(flaky.c_str()) == 0 || errno == ENOENT);
            },
            2s);
      }
    }
  }
  std::string apps() const { return dir / "apps"; }
  std::string Bundle(const std::string& v) const { return dir / ("notes-" + v + ".herd"); }
  std::string Config(const std::string& extra = "") const {
    const std::string path = dir / "agent.yaml";
    WriteFile(path, "exec: {run_as: root}\napps:\n  dir: " + apps() + "\n  publishers: [" +
                        dir / "publisher.pub" + "]\n  uid_base: " + std::to_string(uid_base) +
                        "\n  uid_count: 4\n  port_base: " + std::to_string(port) +
                        "\n  port_count: 4\n" + extra);
    return path;
  }
  // An app of the test's own: `yaml` as its app.yaml in folder `name`,
  // packed and signed with the same key. Its bundle's path.
  std::string Pack(const std::string& name, const std::string& yaml) const {
    const std::string src = dir / name, bundle = src + ".herd";
    fs::create_directories(src);
    WriteFile(src + "/app.yaml", yaml);
    REQUIRE(RunHerd({"app", "pack", src, "-o", bundle}).exit_code == 0);
    REQUIRE(RunHerd({"app", "sign", bundle, "--key", dir / "publisher.key"}).exit_code == 0);
    return bundle;
  }
  std::string Url(const std::string& path) const {
    return "http://127.0.0.1:" + std::to_string(port) + path;
  }
  void AddNote(const std::string& text) const {
    auto r = RunProgram("curl", {"-sf", "-X", "POST", "--data", text, Url("/notes")}, 10s);
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
  }
};

// The one app on the one agent of `inv`, as herd apps -o json shows it.
inline json App(const std::string& inv) {
  auto r = RunHerd({"-i", inv, "-o", "json", "apps", "all"});
  INFO(r.out << r.err);
  REQUIRE(r.exit_code == 0);
  const json host = json::parse(Lines(r.out).at(0));
  const json apps = host["data"]["apps"];
  return apps.empty() ? json::object() : apps.at(0);
}

// Waits (bounded) until no activation of the app is in progress.
inline json Settled(const std::string& inv) {
  json app;
  WaitFor(
      [&] {
        app = App(inv);
        return app.value("state", "") != "activating" && app.value("health", "") == "okay";
      },
      30s);
  return app;
}

// The process has ended (a zombie nobody reaped counts: herdd is not its parent).
inline bool Gone(pid_t pid) {
  const std::string stat = ReadFile("/proc/" + std::to_string(pid) + "/stat");
  const auto close = stat.rfind(')');
  return close == std::string::npos || stat.compare(close + 2, 1, "Z") == 0;
}

// `herd catalog serve DIR` on a port of its own; stopped on destruction.
class ServedCatalog {
 public:
  explicit ServedCatalog(const std::string& dir)
      : out_(dir + ".serve.out"),
        server_({"-o", "json", "catalog", "serve", dir, "--listen", "127.0.0.1:0"}, out_) {
    REQUIRE(WaitFor(
        [&] {
          const auto j = json::parse(ReadFile(out_), nullptr, false);
          if (j.is_discarded()) return false;
          url_ = j.value("url", "");
          return !url_.empty();
        },
        10s));
  }
  const std::string& url() const { return url_; }

 private:
  std::string out_, url_;
  BackgroundHerd server_;
};

inline CliResult Herd(const std::string& inv, std::vector<std::string> args) {
  args.insert(args.begin(), {"-i", inv, "--no-progress"});
  return RunHerd(args, 120s);
}

// `n` (at most 4) agents trusting the sample app's publisher: each its own
// apps folder, and one uid and one port of the Notes slot.
struct Fleet {
  Notes notes;
  ScopedTempDir dir;
  std::vector<std::unique_ptr<AgentProcess>> agents;
  std::string inv;

  // `extra`: more of agent k's `apps:` settings, by k.
  explicit Fleet(int n, const std::map<int, std::string>& extra = {}) {
    std::vector<const AgentProcess*> all;
    for (int k = 0; k < n; ++k) {
      const auto more = extra.find(k);
      const std::string config = dir / ("agent" + std::to_string(k) + ".yaml");
      WriteFile(config, "exec: {run_as: root}\napps:\n  dir: " + AppsDir(k) + "\n  publishers: [" +
                            notes.dir / "publisher.pub" +
                            "]\n  uid_base: " + std::to_string(notes.uid_base + k) +
                            "\n  uid_count: 1\n  port_base: " + std::to_string(notes.port + k) +
                            "\n  port_count: 1\n  restart_backoff: 100ms\n" +
                            (more == extra.end() ? "" : more->second));
      agents.push_back(std::make_unique<AgentProcess>(
          "node" + std::to_string(k + 1), std::vector<std::string>{"--config", config}));
      REQUIRE(agents.back()->ready());
      all.push_back(agents.back().get());
    }
    inv = WriteInventory(dir, all);
  }
  std::string AppsDir(int k) const { return notes.dir / ("apps-" + std::to_string(k)); }

  // The current version of `app` on each host ("" when none).
  std::map<std::string, std::string> Versions(const std::string& app) const {
    auto r = RunHerd({"-i", inv, "-o", "json", "apps", "all"});
    INFO(r.out << r.err);
    REQUIRE(r.exit_code == 0);
    std::map<std::string, std::string> out;
    for (const auto& line : Lines(r.out)) {
      const json host = json::parse(line);
      if (host.value("type", "") != "host") continue;  // the summary
      std::string v;
      for (const auto& a : host["data"]["apps"]) {
        if (a["name"] == app) v = a["current_version"];
      }
      out[host["host"]] = v;
    }
    return out;
  }
  // Whether a version of sequence `seq` of `app` is installed on `host`.
  bool Installed(const std::string& host, const std::string& app, uint64_t seq) const {
    auto r = RunHerd({"-i", inv, "-o", "json", "apps", host});
    REQUIRE(r.exit_code == 0);
    const json listed = json::parse(Lines(r.out).at(0));  // outlives the loop
    for (const auto& a : listed["data"]["apps"]) {
      if (a["name"] != app) continue;
      for (const auto& v : a["versions"]) {
        if (v["sequence"] == seq) return true;
      }
    }
    return false;
  }
};

struct Rollout {
  int exit_code;
  std::vector<json> events;
  std::vector<json> Of(const std::string& kind) const {
    std::vector<json> out;
    for (const auto& e : events) {
      if (e["event"] == kind) out.push_back(e);
    }
    return out;
  }
};

inline Rollout RunRollout(const Fleet& f, std::vector<std::string> args) {
  args.insert(args.begin(), {"-i", f.inv, "-o", "json", "rollout"});
  auto r = RunHerd(args, 180s);
  INFO(r.out << r.err);
  Rollout out{r.exit_code, {}};
  for (const auto& line : Lines(r.out)) out.events.push_back(json::parse(line));
  REQUIRE_FALSE(out.events.empty());
  return out;
}

// node1..noden, each at `v`.
inline std::map<std::string, std::string> All(int n, const std::string& v) {
  std::map<std::string, std::string> m;
  for (int k = 1; k <= n; ++k) m["node" + std::to_string(k)] = v;
  return m;
}

}  // namespace herd::testing::apps

// Apps running on a device, end to end with the real CLI, real agents, the
// sample app (examples/notes) packed and signed by its own script, and the
// real bubblewrap: activation, an upgrade that keeps the data, a broken
// version that reverts by itself, rollback, removal, logs, metrics, herdd
// restarts that leave the app running, and a crash loop reported. SIGKILL
// of herdd during activations: app_crash_test.cc.
#include <signal.h>
#include <sys/wait.h>

#include <catch2/catch.hpp>
#include <thread>

#include "tests/integration/app_test_support.h"

using namespace herd::testing;
using namespace herd::testing::apps;

TEST_CASE("an app activates, upgrades keeping its data, and a broken version reverts by itself",
          "[integration][app][activate]") {
  if (!CanRunApps()) return;
  Notes notes;
  AgentProcess a("node1", {"--config", notes.Config()});
  REQUIRE(a.ready());
  ScopedTempDir dir;
  const std::string inv = WriteInventory(dir, {&a});
  for (const char* v : {"1.0", "1.1", "1.2"}) {
    REQUIRE(Herd(inv, {"app", "install", "all", notes.Bundle(v)}).exit_code == 0);
  }
  auto act = Herd(inv, {"app", "activate", "all", "notes", "1.0"});
  INFO(act.out << act.err);
  REQUIRE(act.exit_code == 0);
  CHECK_THAT(act.out, Catch::Contains("node1: notes nothing -> 1.0: committed"));
  CHECK(HttpGet(notes.Url("/version")) == "1.0 format 1\n");
  notes.AddNote("buy milk");
  json app = App(inv);
  CHECK(app["current_version"] == "1.0");
  CHECK(app["state"] == "running");
  CHECK(app["health"] == "okay");
  CHECK(app["sandbox"] == "bwrap");
  // cgroups where the host has them (this one: v1), rlimits always.
  const std::string limits = app["limits"];
  INFO(limits);
  CHECK((limits == "cgroup-v2" || limits == "cgroup-v1" || limits == "rlimit"));
  if (limits == "cgroup-v1") {
    const std::string group = "herd-apps/notes." + std::to_string(notes.uid_base);
    CHECK(ReadFile("/sys/fs/cgroup/memory/" + group + "/memory.limit_in_bytes") ==
          std::to_string(128 << 20) + "\n");
    CHECK(ReadFile("/sys/fs/cgroup/pids/" + group + "/pids.max") == "16\n");
    CHECK_THAT(ReadFile("/sys/fs/cgroup/pids/" + group + "/cgroup.procs"),
               Catch::Contains(std::to_string(app["pid"].get<int64_t>())));
  }
  CHECK(app["data_format"] == 1);
  // The data belongs to the app's own uid, nobody else may enter.
  const std::string data = notes.apps() + "/notes/data";
  CHECK(fs::status(data).permissions() == fs::perms::owner_all);

  // 1.1 migrates the data to format 2: the note survives.
  auto up = Herd(inv, {"-o", "json", "app", "activate", "all", "notes", "1.1"});
  INFO(up.out << up.err);
  REQUIRE(up.exit_code == 0);
  const json j = json::parse(Lines(up.out).at(0));
  CHECK(j["data"]["activation"]["outcome"] == "committed");
  CHECK((j["data"]["activation"]["snapshot"] == "copy" ||
         j["data"]["activation"]["snapshot"] == "reflink"));
  CHECK(HttpGet(notes.Url("/version")) == "1.1 format 2\n");
  CHECK(HttpGet(notes.Url("/notes")) == "buy milk\n");
  CHECK(fs::exists(data + "/notes.json"));

  // 1.2 never becomes healthy: reverted to 1.1, data as it was; exit 2.
  // Meanwhile a second activation of the app is refused, naming the first.
  CliResult broken, second;
  std::thread first([&] { broken = Herd(inv, {"app", "activate", "all", "notes", "1.2"}); });
  REQUIRE(WaitFor([&] { return App(inv).value("state", "") == "activating"; }, 10s));
  second = Herd(inv, {"app", "activate", "all", "notes", "1.0"});
  first.join();
  CHECK(second.exit_code == 2);
  CHECK_THAT(second.out + second.err,
             Catch::Contains("app notes is busy: an activation of 1.2 (by ") &&
                 Catch::Contains("is in progress"));
  INFO(broken.out << broken.err);
  CHECK(broken.exit_code == 2);
  CHECK_THAT(broken.out + broken.err, Catch::Contains("notes 1.1 -> 1.2: rolled-back (http-503)") &&
                                          Catch::Contains("1.1 runs"));
  app = App(inv);
  CHECK(app["current_version"] == "1.1");
  CHECK(app["running_sequence"] == 2);
  CHECK(app["health"] == "okay");
  CHECK(app["last_activation"]["outcome"] == "rolled-back");
  CHECK(app["last_activation"]["reason"] == "http-503");
  CHECK(HttpGet(notes.Url("/notes")) == "buy milk\n");

  // The agent's own health includes its apps.
  auto health = Herd(inv, {"-o", "json", "health", "all"});
  INFO(health.out);
  CHECK(health.exit_code == 0);
  CHECK_THAT(health.out, Catch::Contains("\"name\":\"app notes\"") &&
                             Catch::Contains("1.1 running, okay (ok)"));

  // The app's log, through the agent.
  auto logs = Herd(inv, {"logs", "all", "notes", "--tail", "50"});
  CHECK(logs.exit_code == 0);
  CHECK_THAT(logs.out, Catch::Contains("notes 1.1 (data format 2) serving 1 note(s)"));

  // --follow: then what the log gains (herd stopped by the test after 7 s).
  // Notes written while it runs (twice: one lands after herd's start
  // however slow that is) show up as the app logs them.
  CliResult follow;
  std::thread follower([&] {
    follow = RunHerd({"-i", inv, "logs", "all", "notes", "--tail", "1", "--follow"}, 7s);
  });
  for (int i = 0; i < 2; ++i) {
    std::this_thread::sleep_for(2s);  // spacing the writes; nothing waits on it
    notes.AddNote("while following");
  }
  follower.join();
  CHECK_THAT(follow.out, Catch::Contains("node1: notes: \"POST /notes HTTP/1.1\" 201"));

  // Per-app metrics and the activations' outcomes.
  const std::string metrics = HttpGet("http://" + a.metrics_address() + "/metrics");
  CHECK_THAT(
      metrics,
      Catch::Contains("herd_app_up{app=\"notes\"} 1") &&
          Catch::Contains("herd_app_info{app=\"notes\",version=\"1.1\",sequence=\"2\"} 1") &&
          Catch::Contains("herd_app_activations_total{app=\"notes\",outcome=\"committed\"} 2") &&
          Catch::Contains("herd_app_activations_total{app=\"notes\",outcome=\"rolled-back\"} 1") &&
          Catch::Contains("herd_app_limits{app=\"notes\",mode=\"" + limits + "\"} 1") &&
          Catch::Contains("herd_app_health_failures_total{app=\"notes\",reason=\"http-503\"}"));
  CHECK(a.AuditHas("Activate", "committed: healthy"));
  CHECK(a.AuditHas("Activate", "rolled-back: http-503"));

  // Rollback to 1.0 needs the data from before 1.1 (format 1).
  auto refused = Herd(inv, {"app", "rollback", "all", "notes"});
  CHECK(refused.exit_code == 2);
  CHECK_THAT(refused.out + refused.err, Catch::Contains("cannot take over data format 2") &&
                                            Catch::Contains("--restore-data"));
  auto back = Herd(inv, {"app", "rollback", "all", "notes", "--restore-data"});
  INFO(back.out << back.err);
  CHECK(back.exit_code == 0);
  CHECK(HttpGet(notes.Url("/version")) == "1.0 format 1\n");
  CHECK(HttpGet(notes.Url("/notes")) == "buy milk\n");

  // Removal keeps the data; purging it is an admin's.
  auto purge = RunHerd({"-i", inv, "app", "remove", "all", "notes", "--purge"}, 60s,
                       {{"HERD_IDENTITY", "operator"}});
  CHECK(purge.exit_code == 2);
  CHECK_THAT(purge.out + purge.err, Catch::Contains("needs the admin role"));
  REQUIRE(Herd(inv, {"app", "remove", "all", "notes"}).exit_code == 0);
  CHECK(App(inv).empty());
  CHECK(fs::exists(data + "/notes.txt"));
  CHECK_FALSE(fs::exists(notes.apps() + "/notes/1"));
  CHECK(WaitFor([&] { return HttpGet(notes.Url("/health")).empty(); }, 10s));
}

TEST_CASE("apps keep running through herdd restarts and kills, and are taken over",
          "[integration][app][activate]") {
  if (!CanRunApps()) return;
  Notes notes;
  ScopedTempDir dir;
  const std::string state = dir / "state";
  int64_t pid = 0;
  {
    AgentProcess a("node1", {"--config", notes.Config(), "--state-dir", state});
    REQUIRE(a.ready());
    const std::string inv = WriteInventory(dir, {&a});
    REQUIRE(Herd(inv, {"app", "install", "all", notes.Bundle("1.0")}).exit_code == 0);
    REQUIRE(Herd(inv, {"app", "activate", "all", "notes", "1.0"}).exit_code == 0);
    pid = App(inv)["pid"].get<int64_t>();
    REQUIRE(pid > 0);
    notes.AddNote("kept");
    CHECK(a.Stop() == 0);  // SIGTERM: herdd goes, the app stays
  }
  CHECK(HttpGet(notes.Url("/notes")) == "kept\n");
  for (int round = 0; round < 2; ++round) {
    AgentProcess a("node1", {"--config", notes.Config(), "--state-dir", state});
    REQUIRE(a.ready());
    const std::string inv = WriteInventory(dir, {&a});
    const json app = Settled(inv);
    CHECK(app["pid"] == pid);  // the same process, taken over
    CHECK(app["health"] == "okay");
    CHECK(app["restarts"] == 0);
    ::kill(a.pid(), SIGKILL);
    CHECK(a.Stop() != 0);
    CHECK(HttpGet(notes.Url("/notes")) == "kept\n");
  }
  // A taken-over app still stops when asked.
  AgentProcess a("node1", {"--config", notes.Config(), "--state-dir", state});
  REQUIRE(a.ready());
  const std::string inv = WriteInventory(dir, {&a});
  REQUIRE(Herd(inv, {"app", "remove", "all", "notes"}).exit_code == 0);
  CHECK(Gone(static_cast<pid_t>(pid)));
}

TEST_CASE("an app that keeps failing is restarted with backoff and reported as a crash loop",
          "[integration][app][activate]") {
  if (!CanRunApps()) return;
  Notes notes;
  // Healthy long enough to commit, then it exits 1 (a few seconds after start).
  const std::string bundle = notes.Pack(
      "flaky",
      "name: flaky\nversion: \"1\"\nsequence: 1\ncommand: [/bin/sh, -c, 'sleep 1.5; exit 1']\n"
      "probes: {start_grace: 100ms, interval_starting: 100ms, healthy_before_commit: 500ms}\n");
  AgentProcess a("node1", {"--config", notes.Config("  restart_backoff: 100ms\n"
                                                    "  restart_backoff_max: 200ms\n")});
  REQUIRE(a.ready());
  ScopedTempDir dir;
  const std::string inv = WriteInventory(dir, {&a});
  REQUIRE(Herd(inv, {"app", "install", "all", bundle}).exit_code == 0);
  REQUIRE(Herd(inv, {"app", "activate", "all", "flaky", "1"}).exit_code == 0);
  json app;
  CHECK(WaitFor(
      [&] {
        app = App(inv);
        return app.value("reason", "") == "crash-loop";
      },
      30s));
  INFO(app.dump());
  CHECK(app["health"] == "error");
  CHECK(app["restarts"].get<int>() >= 4);
  CHECK(app["last_exit"] == "exited-1");
}

TEST_CASE("exec probes run in the app's sandbox with its data and uid, and a failing one reverts",
          "[integration][app][activate]") {
  if (!CanRunApps()) return;
  Notes notes;
  // Ready once it wrote /data/ready; as pid 1 without a SIGTERM handler,
  // `sleep` is stopped by SIGKILL after stop_timeout.
  const auto make = [&](int seq, const std::string& probe) {
    return notes.Pack("prober-" + std::to_string(seq),
                      "name: prober\nversion: \"" + std::to_string(seq) +
                          "\"\nsequence: " + std::to_string(seq) +
                          "\ncommand: [/bin/sh, -c, 'sleep 0.3; touch /data/ready; exec sleep "
                          "1000']\nstop_timeout: 1s\nprobes:\n  startup: {exec: " +
                          probe +
                          "}\n  start_grace: 100ms\n  interval_starting: 200ms\n"
                          "  healthy_before_commit: 500ms\n");
  };
  const std::string good = make(1, "[/bin/sh, -c, 'test -f /data/ready && test $(id -u) != 0']");
  const std::string bad = make(2, "[/bin/sh, -c, 'exit 3']");
  AgentProcess a("node1", {"--config", notes.Config()});
  REQUIRE(a.ready());
  ScopedTempDir dir;
  const std::string inv = WriteInventory(dir, {&a});
  REQUIRE(Herd(inv, {"app", "install", "all", good}).exit_code == 0);
  REQUIRE(Herd(inv, {"app", "install", "all", bad}).exit_code == 0);
  auto ok = Herd(inv, {"app", "activate", "all", "prober", "1"});
  INFO(ok.out << ok.err);
  CHECK(ok.exit_code == 0);
  auto reverted = Herd(inv, {"app", "activate", "all", "prober", "2"});
  INFO(reverted.out << reverted.err);
  CHECK(reverted.exit_code == 2);
  CHECK_THAT(reverted.out + reverted.err, Catch::Contains("rolled-back (exit-3)"));
  const json app = App(inv);
  CHECK(app["running_sequence"] == 1);
  CHECK(app["health"] == "okay");
}

TEST_CASE("an app not healthy by its startup deadline is reverted, even when its probes wait",
          "[integration][app][activate]") {
  if (!CanRunApps()) return;
  Notes notes;
  // It never serves on its socket: probes time out, but within start_grace
  // failures do not count, so only the deadline ends the wait.
  const std::string bundle =
      notes.Pack("sleeper",
                 "name: sleeper\nversion: \"1\"\nsequence: 1\ncommand: [/bin/sleep, \"1000\"]\n"
                 "stop_timeout: 1s\npermissions: {listen: [http]}\nprobes:\n"
                 "  startup: {http: {listen: http}}\n  start_grace: 30s\n  startup_deadline: 2s\n"
                 "  interval_starting: 200ms\n  timeout: 300ms\n");
  AgentProcess a("node1", {"--config", notes.Config()});
  REQUIRE(a.ready());
  ScopedTempDir dir;
  const std::string inv = WriteInventory(dir, {&a});
  REQUIRE(Herd(inv, {"app", "install", "all", bundle}).exit_code == 0);
  auto r = Herd(inv, {"-o", "json", "app", "activate", "all", "sleeper", "1"});
  INFO(r.out << r.err);
  CHECK(r.exit_code == 2);
  const json j = json::parse(Lines(r.out).at(0));
  CHECK(j["data"]["activation"]["outcome"] == "rolled-back");
  CHECK(j["data"]["activation"]["reason"] == "startup-deadline");
  CHECK(j["data"]["duration_ms"].get<int64_t>() >= 2000);
  // Nothing ran before, so nothing runs after.
  const json app = App(inv);
  CHECK(app["current_sequence"] == 0);
  CHECK(app["running_sequence"] == 0);
}

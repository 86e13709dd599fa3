// herd rollout with real agents, the real CLI, real signed bundles and the
// real bubblewrap: a rollout wave by wave, a broken version halting at its
// canary with no other host touched, a failure budget spent exactly at the
// failure after it, and the hosts the rollout updated rolled back.
#include <signal.h>

#include <catch2/catch.hpp>
#include <map>
#include <nlohmann/json.hpp>

#include "tests/integration/app_test_support.h"
#include "tests/support/test_support.h"

using namespace herd::testing;
using namespace herd::testing::apps;
using namespace std::chrono_literals;
using nlohmann::json;

namespace {

// Whether node1 reports an activation of notes in progress, polled at most 60 s.
bool CanaryActivating(const Fleet& f) {
  return WaitFor(
      [&] {
        auto s = RunHerd({"-i", f.inv, "-o", "json", "rollout", "status", "notes", "node1"});
        return s.out.find("\"outcome\":\"\"") != std::string::npos;
      },
      60s);
}

}  // namespace

TEST_CASE("a rollout goes wave by wave, and a broken version halts at its canary",
          "[integration][app][rollout]") {
  if (!CanRunApps()) return;
  Fleet f(4);
  const Notes& notes = f.notes;
  REQUIRE(Herd(f.inv, {"app", "install", "all", notes.Bundle("1.0")}).exit_code == 0);
  REQUIRE(Herd(f.inv, {"app", "activate", "all", "notes", "1.0"}).exit_code == 0);
  notes.AddNote("kept");  // on node1, the canary

  // Without --yes and without a terminal, nothing is done.
  auto unasked = RunHerd({"-i", f.inv, "rollout", notes.Bundle("1.1"), "all"});
  CHECK(unasked.exit_code == 1);
  CHECK_THAT(unasked.err, Catch::Contains("--yes"));

  auto good =
      RunRollout(f, {notes.Bundle("1.1"), "all", "--canary", "1", "--batch", "50%", "--yes"});
  CHECK(good.exit_code == 0);
  REQUIRE(good.Of("rollout_started").size() == 1);
  CHECK(good.Of("rollout_started")[0]["waves"] == json::array({1, 2, 1}));
  const auto waves = good.Of("wave_started");
  REQUIRE(waves.size() == 3);
  CHECK(waves[0]["kind"] == "canary");
  CHECK(waves[0]["hosts"] == json::array({"node1"}));
  CHECK(waves[1]["hosts"] == json::array({"node2", "node3"}));
  CHECK(good.Of("host_updated").size() == 4);
  CHECK(good.Of("host_updated")[0]["from_version"] == "1.0");
  const json done = good.Of("finished").at(0);
  CHECK(done["outcome"] == "completed");
  CHECK(done["updated"] == 4);
  CHECK(f.Versions("notes") == All(4, "1.1"));
  CHECK(HttpGet(notes.Url("/notes")) == "kept\n");
  // Each device recorded the rollout with its activation: a fresh CLI reads
  // where it stands from the devices alone.
  const std::string id = good.Of("rollout_started")[0]["rollout_id"];
  CHECK(id == done["rollout_id"]);
  auto status =
      RunHerd({"-i", f.inv, "--no-progress", "--fold", "rollout", "status", "notes", "all"});
  INFO(status.out << status.err);
  CHECK(status.exit_code == 0);
  CHECK_THAT(status.out, Catch::Contains("node[1-4]") &&
                             Catch::Contains("notes 1.1, okay; last activate 1.0 -> 1.1: "
                                             "committed (healthy), rollout " +
                                             id));

  // The plan changes nothing.
  auto plan = RunHerd({"-i", f.inv, "rollout", notes.Bundle("1.2"), "all", "--dry-run"});
  INFO(plan.out << plan.err);
  CHECK(plan.exit_code == 0);
  CHECK_THAT(plan.out, Catch::Contains("wave 1: node1: install and activate 1.2 (now 1.1)") &&
                           Catch::Contains("wave 4: node4:"));
  CHECK_FALSE(f.Installed("node1", "notes", 3));

  // 1.2 never becomes healthy: the canary reverts itself, the rollout halts
  // and no other host receives it.
  auto bad = RunRollout(f, {notes.Bundle("1.2"), "all", "--yes"});
  CHECK(bad.exit_code == 2);
  REQUIRE(bad.Of("host_failed").size() == 1);
  CHECK(bad.Of("host_failed")[0]["host"] == "node1");
  CHECK(bad.Of("host_failed")[0]["reason"] == "reverted");
  CHECK(bad.Of("halted").size() == 1);
  CHECK(bad.Of("wave_started").size() == 1);
  const json halted = bad.Of("finished").at(0);
  CHECK(halted["outcome"] == "halted");
  CHECK(halted["failed"] == 1);
  CHECK(halted["not_touched"] == 3);
  CHECK(f.Versions("notes") == All(4, "1.1"));
  for (const char* h : {"node2", "node3", "node4"}) CHECK_FALSE(f.Installed(h, "notes", 3));
  CHECK(HttpGet(notes.Url("/notes")) == "kept\n");
  auto after = RunHerd({"-i", f.inv, "-o", "json", "rollout", "status", "notes", "node1"});
  REQUIRE(after.exit_code == 0);
  const json node1 = json::parse(Lines(after.out).at(0))["data"];
  CHECK(node1["rollout_id"] == bad.Of("rollout_started")[0]["rollout_id"]);
  CHECK(node1["outcome"] == "rolled-back");
  CHECK(node1["current_version"] == "1.1");
}

TEST_CASE("a failure budget of 2 halts exactly at the third failure and rolls back the updated",
          "[integration][app][rollout]") {
  if (!CanRunApps()) return;
  Fleet f(4);
  const Notes& notes = f.notes;
  // Version 2 fails on every host whose data holds `fail` (node2 to node4).
  const auto make = [&](int seq, const std::string& gate) {
    return notes.Pack("flaky-" + std::to_string(seq),
                      "name: flaky\nversion: \"" + std::to_string(seq) + "\"\nsequence: " +
                          std::to_string(seq) + "\ncommand: [/bin/sh, -c, '" + gate +
                          "exec sleep 600']\nstop_timeout: 200ms\n"
                          "probes: {start_grace: 300ms, interval_starting: 100ms, "
                          "healthy_before_commit: 500ms}\n");
  };
  const std::string v1 = make(1, ""), v2 = make(2, "test -e /data/fail && exit 3; ");
  REQUIRE(Herd(f.inv, {"app", "install", "all", v1}).exit_code == 0);
  REQUIRE(Herd(f.inv, {"app", "activate", "all", "flaky", "1"}).exit_code == 0);
  for (int k = 1; k < 4; ++k) WriteFile(f.AppsDir(k) + "/flaky/data/fail", "");

  auto r =
      RunRollout(f, {v2, "all", "--canary", "1", "--batch", "1", "--max-failures", "2", "--yes"});
  CHECK(r.exit_code == 2);
  const auto failed = r.Of("host_failed");
  REQUIRE(failed.size() == 3);
  CHECK(failed[0]["host"] == "node2");
  CHECK(failed[1]["failures"] == 2);
  CHECK(failed[2]["host"] == "node4");
  CHECK(failed[2]["failures"] == 3);
  CHECK(r.Of("wave_started").size() == 4);  // it went on after the second
  REQUIRE(r.Of("host_reverted").size() == 1);
  CHECK(r.Of("host_reverted")[0]["host"] == "node1");
  const json end = r.Of("finished").at(0);
  CHECK(end["outcome"] == "halted");
  CHECK(end["rolled_back"] == 1);
  CHECK(f.Versions("flaky") == All(4, "1"));
}

TEST_CASE("offline hosts and hosts whose owner refuses the app are counted apart, not as failures",
          "[integration][app][rollout]") {
  if (!CanRunApps()) return;
  Fleet f(3, {{1, "  max_memory: 16M\n"}});  // node2's owner allows less than notes asks
  REQUIRE(f.agents[2]->Stop() == 0);         // node3 is offline
  auto r = RunRollout(f, {f.notes.Bundle("1.0"), "all", "--batch", "1", "--yes"});
  CHECK(r.exit_code == 6);  // refused (2) and not reached (4)
  REQUIRE(r.Of("host_updated").size() == 1);
  REQUIRE(r.Of("host_refused").size() == 1);
  CHECK(r.Of("host_refused")[0]["host"] == "node2");
  CHECK_THAT(r.Of("host_refused")[0]["message"].get<std::string>(), Catch::Contains("memory"));
  REQUIRE(r.Of("host_not_reached").size() == 1);
  CHECK(r.Of("host_not_reached")[0]["host"] == "node3");
  CHECK(r.Of("host_failed").empty());
  const json end = r.Of("finished").at(0);
  CHECK(end["outcome"] == "completed");
  CHECK(end["refused"] == 1);
  CHECK(end["not_reached"] == 1);
  CHECK(end["failed"] == 0);
}

TEST_CASE("Ctrl-C lets the wave in flight finish, stops before the next, and a rerun goes on",
          "[integration][app][rollout]") {
  if (!CanRunApps()) return;
  Fleet f(4);
  REQUIRE(Herd(f.inv, {"app", "install", "all", f.notes.Bundle("1.0")}).exit_code == 0);
  REQUIRE(Herd(f.inv, {"app", "activate", "all", "notes", "1.0"}).exit_code == 0);
  const std::string events = f.dir / "events.jsonl";
  // SIGINT as a terminal would deliver it, once the second wave started
  // (polled, at most 60 s).
  BackgroundHerd run(
      {"-i", f.inv, "-o", "json", "rollout", f.notes.Bundle("1.1"), "all", "--batch", "1", "--yes"},
      events);
  CHECK(WaitFor([&] { return ReadFile(events).find("\"wave\":2,") != std::string::npos; }, 60s));
  run.Signal(SIGINT);
  const int code = run.Wait(180s);
  INFO(ReadFile(events) << ReadFile(events + ".err"));
  CHECK(code == 130);
  Rollout r{code, {}};
  for (const auto& line : Lines(ReadFile(events))) r.events.push_back(json::parse(line));
  CHECK(r.Of("wave_started").size() == 2);
  CHECK(r.Of("host_updated").size() == 2);  // the wave in flight finished
  const json end = r.Of("finished").at(0);
  CHECK(end["outcome"] == "interrupted");
  CHECK(end["not_touched"] == 2);
  const std::string id = r.Of("rollout_started").at(0)["rollout_id"];
  CHECK_THAT(end["resume"].get<std::string>(),
             Catch::Contains("herd rollout resume " + id + " all --yes"));
  CHECK(f.Versions("notes") ==
        (std::map<std::string, std::string>{
            {"node1", "1.1"}, {"node2", "1.1"}, {"node3", "1.0"}, {"node4", "1.0"}}));
  // Resume by id: what it rolls is read from the hosts; it goes on where it
  // stopped, under the same id.
  auto again = RunRollout(
      f, {"resume", id, "all", "--bundle", f.notes.Bundle("1.1"), "--batch", "1", "--yes"});
  CHECK(again.exit_code == 0);
  const json resumed = again.Of("rollout_resumed").at(0);
  CHECK(resumed["version"] == "1.1");
  CHECK(resumed["on_version"] == 2);
  CHECK(again.Of("rollout_started").at(0)["rollout_id"] == id);
  CHECK(again.Of("finished").at(0)["updated"] == 4);
  CHECK(f.Versions("notes") == All(4, "1.1"));
  // A bundle of another version, or an id no host carries, is refused.
  auto wrong = RunHerd(
      {"-i", f.inv, "rollout", "resume", id, "all", "--bundle", f.notes.Bundle("1.2"), "--yes"},
      60s);
  CHECK(wrong.exit_code != 0);
  CHECK_THAT(wrong.err, Catch::Contains("rolls notes 1.1; --bundle"));
  auto unknown = RunHerd({"-i", f.inv, "rollout", "resume", "r-none", "all", "--yes"}, 60s);
  CHECK(unknown.exit_code != 0);
  CHECK_THAT(unknown.err, Catch::Contains("no host's last activation carries rollout r-none"));
}

TEST_CASE("two rollouts of one app at once: the second is refused on the host, naming the first",
          "[integration][app][rollout]") {
  if (!CanRunApps()) return;
  Fleet f(2);
  REQUIRE(Herd(f.inv, {"app", "install", "all", f.notes.Bundle("1.0")}).exit_code == 0);
  REQUIRE(Herd(f.inv, {"app", "activate", "all", "notes", "1.0"}).exit_code == 0);
  const std::string events = f.dir / "first.jsonl";
  // The first rollout in the background; the second once node1 reports the
  // first's canary activation in progress (it lasts at least the 2 s notes
  // waits healthy).
  BackgroundHerd first_run(
      {"-i", f.inv, "-o", "json", "rollout", f.notes.Bundle("1.1"), "all", "--yes"}, events);
  CHECK(CanaryActivating(f));
  auto second =
      RunHerd({"-i", f.inv, "-o", "json", "rollout", f.notes.Bundle("1.2"), "all", "--yes"}, 180s);
  const int first_code = first_run.Wait(180s);
  INFO(second.out << second.err << ReadFile(events));
  CHECK(first_code == 0);
  CHECK(second.exit_code == 2);
  const json first = json::parse(Lines(ReadFile(events)).at(0));
  const std::string id = first["rollout_id"];
  CHECK_THAT(second.out, Catch::Contains("is busy: an activation of 1.1 (by admin, rollout " + id +
                                         ") is in progress"));
  CHECK(f.Versions("notes") == All(2, "1.1"));
}

TEST_CASE(
    "an agent killed during its activation is a failure: the rollout halts, and the device "
    "puts the old version back when it restarts",
    "[integration][app][rollout]") {
  if (!CanRunApps()) return;
  Fleet f(2);
  REQUIRE(Herd(f.inv, {"app", "install", "all", f.notes.Bundle("1.0")}).exit_code == 0);
  REQUIRE(Herd(f.inv, {"app", "activate", "all", "notes", "1.0"}).exit_code == 0);
  const std::string events = f.dir / "events.jsonl";
  // node1's herdd is killed once it reports the canary's activation in
  // progress.
  BackgroundHerd run({"-i", f.inv, "-o", "json", "rollout", f.notes.Bundle("1.1"), "all", "--yes"},
                     events);
  CHECK(CanaryActivating(f));
  ::kill(f.agents[0]->pid(), SIGKILL);
  const int code = run.Wait(180s);
  INFO(ReadFile(events) << ReadFile(events + ".err"));
  CHECK(code == 6);  // node1 unreachable, node2 not touched
  Rollout r{code, {}};
  for (const auto& line : Lines(ReadFile(events))) r.events.push_back(json::parse(line));
  REQUIRE(r.Of("host_failed").size() == 1);
  CHECK(r.Of("host_failed")[0]["host"] == "node1");
  CHECK(r.Of("host_failed")[0]["reason"] == "unreachable");
  CHECK(r.Of("finished").at(0)["outcome"] == "halted");
  CHECK(r.Of("wave_started").size() == 1);
  const std::string id = r.Of("rollout_started").at(0)["rollout_id"];
  // Restarted on the same state, node1 finishes the cut activation by
  // putting 1.0 back.
  AgentProcess again("node1",
                     {"--config", f.dir / "agent0.yaml", "--state-dir", f.agents[0]->state_dir()});
  REQUIRE(again.ready());
  ScopedTempDir dir;
  const std::string inv = WriteInventory(dir, {&again, f.agents[1].get()});
  json status;
  CHECK(WaitFor(
      [&] {
        auto s = RunHerd({"-i", inv, "-o", "json", "rollout", "status", "notes", "node1"});
        if (s.exit_code != 0) return false;
        status = json::parse(Lines(s.out).at(0))["data"];
        return status["outcome"] != "" && status["health"] == "okay";
      },
      60s));
  INFO(status.dump());
  CHECK(status["current_version"] == "1.0");
  CHECK(status["rollout_id"] == id);
  CHECK(status["outcome"] == "rolled-back");
  CHECK_FALSE(f.Installed("node2", "notes", 2));
}

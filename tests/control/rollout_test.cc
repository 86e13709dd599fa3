// The rollout's pure parts: how hosts split into waves, when the failure
// budget is spent, and how events read for people.
#include "control/rollout.h"

#include <catch2/catch.hpp>

using namespace herd;
using herd::control::FailureBudget;
using herd::control::PlanWaves;
using Waves = std::vector<std::vector<size_t>>;

TEST_CASE("hosts split into a canary and batches of N or P percent", "[control][rollout]") {
  CHECK(*PlanWaves(4, 1, "50%") == Waves{{0}, {1, 2}, {3}});
  CHECK(*PlanWaves(10, 1, "25%") == Waves{{0}, {1, 2, 3}, {4, 5, 6}, {7, 8, 9}});
  CHECK(*PlanWaves(5, 2, "2") == Waves{{0, 1}, {2, 3}, {4}});
  CHECK(*PlanWaves(3, 0, "100%") == Waves{{0, 1, 2}});
  CHECK(*PlanWaves(2, 5, "1") == Waves{{0, 1}});          // a canary larger than the fleet
  CHECK(*PlanWaves(3, 1, "1%") == Waves{{0}, {1}, {2}});  // at least one host a batch
  CHECK(PlanWaves(0, 1, "25%")->empty());
  for (const char* bad : {"", "0", "0%", "101%", "x", "-1", "2.5", "%", "1234567890"}) {
    INFO(bad);
    auto w = PlanWaves(4, 1, bad);
    REQUIRE_FALSE(w.ok());
    CHECK_THAT(w.status().message(), Catch::Contains("--batch"));
  }
}

TEST_CASE("the failure budget is spent by the failure after it", "[control][rollout]") {
  FailureBudget none{{}, {}, 10};
  CHECK_FALSE(none.Spent(0));
  CHECK(none.Spent(1));
  CHECK(none.Describe() == "no failure");
  FailureBudget two{2, {}, 10};
  CHECK_FALSE(two.Spent(2));
  CHECK(two.Spent(3));
  CHECK(two.Describe() == "2 failures");
  FailureBudget ratio{{}, 0.25, 10};  // 2.5 hosts: the third failure spends it
  CHECK_FALSE(ratio.Spent(2));
  CHECK(ratio.Spent(3));
  CHECK(ratio.Describe() == "25% of 10 hosts (2)");
  FailureBudget both{5, 0.1, 10};  // whichever comes first
  CHECK_FALSE(both.Spent(1));
  CHECK(both.Spent(2));
}

TEST_CASE("rollout events read as lines for people", "[control][rollout]") {
  using nlohmann::json;
  CHECK(control::EventLine({{"event", "wave_started"},
                            {"wave", 2},
                            {"waves", 3},
                            {"kind", "batch"},
                            {"hosts", {"a", "b"}}}) == "wave 2/3 (batch): a b");
  CHECK(control::EventLine({{"event", "host_updated"},
                            {"host", "a"},
                            {"from_version", "1.0"},
                            {"to_version", "1.1"},
                            {"duration_ms", 2300}}) == "  a: updated 1.0 -> 1.1 (2.3 s)");
  const std::string end = control::EventLine(
      {{"event", "finished"}, {"outcome", "interrupted"}, {"resume", "run it again"}});
  CHECK_THAT(end, Catch::StartsWith("rollout interrupted: 0 updated") &&
                      Catch::Contains("to resume: run it again"));
}

namespace {

// A host's `herd apps` result with notes at `current`, its versions 1.0 (1),
// 1.1 (2), and a last activation of `kind` from -> to by rollout `id`.
control::HostResult Listed(const std::string& host, uint64_t current, const std::string& kind,
                           uint64_t from, uint64_t to, const std::string& id) {
  control::HostResult r;
  r.host = host;
  r.outcome = control::Outcome::kOk;
  nlohmann::json app = {
      {"name", "notes"},
      {"current_sequence", current},
      {"versions", {{{"version", "1.1"}, {"sequence", 2}}, {{"version", "1.0"}, {"sequence", 1}}}}};
  if (!kind.empty()) {
    app["last_activation"] = {
        {"kind", kind}, {"from_sequence", from}, {"to_sequence", to}, {"rollout_id", id}};
  }
  r.data = {{"apps", {app}}};
  return r;
}

}  // namespace

TEST_CASE("where a rollout stands is read from the hosts' last activations", "[control][rollout]") {
  using control::FindRollout;
  // node1 and node2 went to 1.1 by r1; node3 was never touched; node4 was
  // rolled back by r1 when it halted (its rollback still points at 1.1).
  const std::vector<control::HostResult> listed = {
      Listed("node1", 2, "activate", 1, 2, "r1"), Listed("node2", 2, "activate", 1, 2, "r1"),
      Listed("node3", 1, "activate", 0, 1, ""), Listed("node4", 1, "rollback", 2, 1, "r1")};
  auto p = FindRollout(listed, "r1");
  REQUIRE(p.ok());
  CHECK(p->app == "notes");
  CHECK(p->version == "1.1");
  CHECK(p->sequence == 2);
  CHECK(p->carrying == 3);
  CHECK(p->on_version == 2);

  auto none = FindRollout(listed, "r2");
  CHECK(none.status().code() == StatusCode::kNotFound);
  CHECK_THAT(none.status().message(), Catch::Contains("carries rollout r2"));

  // Hosts that disagree on what r1 rolled.
  auto split = FindRollout(
      {Listed("node1", 2, "activate", 1, 2, "r1"), Listed("node2", 1, "activate", 2, 1, "r1")},
      "r1");
  CHECK(split.status().code() == StatusCode::kFailedPrecondition);
  CHECK_THAT(split.status().message(), Catch::Contains("node1 has notes sequence 2, node2"));
}

TEST_CASE("the progress bar counts waves and hosts from the events", "[control][rollout]") {
  control::RolloutProgress p;
  p.Add({{"event", "rollout_started"}, {"hosts", 4}, {"waves", {1, 2, 1}}});
  p.Add({{"event", "wave_started"}, {"wave", 1}});
  CHECK(p.Line(8) == "[........] wave 1/3  0/4 done  0 failed  0 not reached  0 refused");
  p.Add({{"event", "host_updated"}});
  p.Add({{"event", "wave_started"}, {"wave", 2}});
  p.Add({{"event", "host_not_reached"}});
  p.Add({{"event", "host_failed"}});
  CHECK(p.Line(8) == "[######..] wave 2/3  1/4 done  1 failed  1 not reached  0 refused");
  CHECK_FALSE(p.finished());
  p.Add({{"event", "finished"}});
  CHECK(p.finished());
}

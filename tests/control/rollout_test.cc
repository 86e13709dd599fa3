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

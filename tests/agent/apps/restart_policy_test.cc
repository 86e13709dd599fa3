// RestartPolicy with time passed in: backoff, its reset, the crash-loop
// state, and the three modes.
#include "agent/apps/restart_policy.h"

#include <catch2/catch.hpp>

using herd::agent::RestartPolicy;
using namespace std::chrono_literals;

namespace {

RestartPolicy Policy(const std::string& mode = "on-failure") {
  RestartPolicy::Settings s;
  s.mode = mode;
  auto p = RestartPolicy::Make(s);
  REQUIRE(p.ok());
  return *p;
}

}  // namespace

TEST_CASE("failures back off from 1 s doubling to 5 min, and a long run resets it",
          "[agent][apps]") {
  RestartPolicy p = Policy();
  herd::Clock::time_point t{};
  std::vector<std::chrono::seconds> waits;
  for (int i = 0; i < 12; ++i) {
    p.Started(t);
    t += 2s;  // a short run, then a failure
    auto again = p.Ended(t, true);
    REQUIRE(again);
    waits.push_back(std::chrono::duration_cast<std::chrono::seconds>(*again - t));
    t = *again;
  }
  CHECK(waits == std::vector<std::chrono::seconds>{1s, 2s, 4s, 8s, 16s, 32s, 64s, 128s, 256s, 300s,
                                                   300s, 300s});
  // A crash loop is a state, not a give-up: it is still started again.
  CHECK(p.crash_looping());
  CHECK(p.restarts() == 12);
  // Ten minutes of running: back to 1 s, no longer a loop.
  p.Started(t);
  t += 10min;
  auto again = p.Ended(t, true);
  REQUIRE(again);
  CHECK(*again - t == 1s);
  CHECK_FALSE(p.crash_looping());
  CHECK(p.failures_in_a_row() == 1);
}

TEST_CASE("the restart modes: on-failure, always, never", "[agent][apps]") {
  herd::Clock::time_point t{};
  RestartPolicy on_failure = Policy("on-failure");
  on_failure.Started(t);
  CHECK_FALSE(on_failure.Ended(t + 1s, false));  // a clean exit stays down
  on_failure.Started(t);
  CHECK(on_failure.Ended(t + 1s, true));
  RestartPolicy always = Policy("always");
  always.Started(t);
  CHECK(always.Ended(t + 1s, false));
  RestartPolicy never = Policy("never");
  never.Started(t);
  CHECK_FALSE(never.Ended(t + 1s, true));
  CHECK(never.failures_in_a_row() == 1);
  // Four failures are not yet a loop; the fifth is; a success clears it.
  RestartPolicy p = Policy();
  for (int i = 0; i < 4; ++i) {
    p.Started(t);
    (void)p.Ended(t + 1s, true);
  }
  CHECK_FALSE(p.crash_looping());
  p.Started(t);
  (void)p.Ended(t + 1s, true);
  CHECK(p.crash_looping());
  p.Started(t);
  (void)p.Ended(t + 1s, false);
  CHECK_FALSE(p.crash_looping());
}

TEST_CASE("restart settings that make no sense are refused", "[agent][apps]") {
  RestartPolicy::Settings s;
  s.mode = "sometimes";
  CHECK(RestartPolicy::Make(s).status().code() == herd::StatusCode::kInvalidArgument);
  s.mode = "always";
  s.first_delay = 10s;
  s.max_delay = 1s;
  CHECK_FALSE(RestartPolicy::Make(s).ok());
}

#include "common/rate_limiter.h"

#include <catch2/catch.hpp>

#include "common/key_value.h"
#include "tests/support/fakes.h"

using namespace std::chrono_literals;

TEST_CASE("a rate limiter lets the limit through per window and counts the rest", "[common]") {
  herd::testing::FakeClock clock;
  herd::RateLimiter limiter(2, 10s, clock);
  int left_out = -1;
  CHECK(limiter.Allow(&left_out));
  CHECK(left_out == 0);
  CHECK(limiter.Allow());
  CHECK_FALSE(limiter.Allow());
  CHECK_FALSE(limiter.Allow());
  clock.Advance(9s);
  CHECK_FALSE(limiter.Allow());
  clock.Advance(1s);  // a new window: the three held back are reported once
  CHECK(limiter.Allow(&left_out));
  CHECK(left_out == 3);
  CHECK(limiter.Allow(&left_out));
  CHECK(left_out == 0);
}

TEST_CASE("KEY=VALUE arguments are parsed in one place", "[common]") {
  auto kv = herd::ParseKeyValue("A=b=c");
  REQUIRE(kv.ok());
  CHECK(kv->first == "A");
  CHECK(kv->second == "b=c");
  CHECK(herd::ParseKeyValue("EMPTY=")->second.empty());
  CHECK(herd::ParseKeyValue("novalue").status().message() == "expects KEY=VALUE, got 'novalue'");
  CHECK_FALSE(herd::ParseKeyValue("=x").ok());
  // A hostile argument is not echoed whole.
  CHECK(herd::ParseKeyValue(std::string(100'000, 'x')).status().message().size() < 300);
}

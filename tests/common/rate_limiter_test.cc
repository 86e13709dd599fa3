#include "common/rate_limiter.h"

#include <catch2/catch.hpp>

#include "common/key_value.h"
#include "common/text.h"
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

TEST_CASE("client text is checked for NUL bytes and size, and quoted in bounded excerpts",
          "[common]") {
  using herd::CheckAbsolutePath;
  using herd::CheckText;
  using herd::Excerpt;
  CHECK(Excerpt("ab\x1b[2Jc") == "ab\\x1b[2Jc");
  CHECK(Excerpt(std::string(100'000, 'x')) == std::string(80, 'x') + "… (100000 bytes)");
  CHECK(CheckText(std::string("/x\0suffix", 9), "path", 100).message() ==
        "path holds a NUL byte: '/x\\x00suffix'");
  CHECK_THAT(CheckText(std::string(200, 'a'), "argv[0]", 100).message(),
             Catch::Contains("argv[0] is longer than 100 bytes"));
  CHECK(herd::IsEnvName("LANG"));
  CHECK(herd::IsEnvName("_X1"));
  for (const char* bad : {"K=x", "1A", "", "A B", "A-B"}) CHECK_FALSE(herd::IsEnvName(bad));
  CHECK(herd::IsRolloutId("r20261204-1a2b.c_d"));
  CHECK(herd::IsRolloutId(std::string(64, 'a')));
  for (const std::string& bad :
       {std::string(65, 'a'), std::string("a/b"), std::string("a\0b", 3)}) {
    CHECK_FALSE(herd::IsRolloutId(bad));
  }
  CHECK(CheckAbsolutePath("/tmp/x", "dst").ok());
  CHECK_FALSE(CheckAbsolutePath("tmp/x", "dst").ok());
  CHECK_THAT(CheckAbsolutePath("/tmp/" + std::string(256, 'n'), "dst").message(),
             Catch::Contains("has a name longer than 255 bytes"));
  CHECK_FALSE(CheckAbsolutePath("/" + std::string(5000, 'a'), "dst").ok());
}

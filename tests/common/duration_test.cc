#include "common/duration.h"

#include <catch2/catch.hpp>

TEST_CASE("durations parse with units", "[common]") {
  CHECK(herd::ParseDuration("500ms")->count() == 500);
  CHECK(herd::ParseDuration("30s")->count() == 30'000);
  CHECK(herd::ParseDuration("2m")->count() == 120'000);
  CHECK(herd::ParseDuration("1.5")->count() == 1'500);
  CHECK_FALSE(herd::ParseDuration("10 parsecs").ok());
  CHECK_FALSE(herd::ParseDuration("").ok());
}

TEST_CASE("durations format with two units at most", "[common]") {
  using std::chrono::milliseconds;
  CHECK(herd::FormatDuration(milliseconds(0)) == "0s");
  CHECK(herd::FormatDuration(milliseconds(500)) == "500ms");
  CHECK(herd::FormatDuration(milliseconds(45'000)) == "45s");
  CHECK(herd::FormatDuration(milliseconds(600'000)) == "10m0s");
  CHECK(herd::FormatDuration(milliseconds(3'600'000 + 5 * 60'000 + 7'000)) == "1h5m");
  CHECK(herd::FormatDuration(milliseconds(2 * 86'400'000LL + 4 * 3'600'000)) == "2d4h");
}

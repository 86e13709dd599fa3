// UnifiedDiff: what `diff -u` would print, bounded.
#include "common/text_diff.h"

#include <catch2/catch.hpp>
#include <string>

using herd::UnifiedDiff;

TEST_CASE("a unified diff shows the changed lines with three lines of context", "[common][diff]") {
  CHECK(UnifiedDiff("same\n", "same\n", "/f").empty());
  CHECK(UnifiedDiff("a\nb\nc\n", "a\nB\nc\n", "/etc/f") ==
        "--- /etc/f\n+++ /etc/f\n@@ -1,3 +1,3 @@\n a\n-b\n+B\n c\n");
  // Far apart changes are two hunks; context is cut at three lines.
  std::string before, after;
  for (int i = 1; i <= 20; ++i) {
    before += std::to_string(i) + "\n";
    after += (i == 2 ? "two" : i == 18 ? "eighteen" : std::to_string(i)) + "\n";
  }
  const std::string d = UnifiedDiff(before, after, "/f");
  CHECK(d ==
        "--- /f\n+++ /f\n@@ -1,5 +1,5 @@\n 1\n-2\n+two\n 3\n 4\n 5\n"
        "@@ -15,6 +15,6 @@\n 15\n 16\n 17\n-18\n+eighteen\n 19\n 20\n");
  // From nothing, to nothing, and a last line without a newline.
  CHECK(UnifiedDiff("", "x\n", "/f") == "--- /f\n+++ /f\n@@ -0,0 +1,1 @@\n+x\n");
  CHECK(UnifiedDiff("x\n", "", "/f") == "--- /f\n+++ /f\n@@ -1,1 +0,0 @@\n-x\n");
  CHECK_THAT(UnifiedDiff("x\n", "x", "/f"), Catch::Contains("\\ No newline at end of file"));
}

TEST_CASE("a diff of too many changes says so instead of growing without bound", "[common][diff]") {
  std::string a, b;
  for (int i = 0; i < 3000; ++i) {
    a += "a" + std::to_string(i) + "\n";
    b += "b" + std::to_string(i) + "\n";
  }
  const std::string d = UnifiedDiff(a, b, "/big");
  CHECK_THAT(d, Catch::Contains("too many changes to show"));
  CHECK(d.size() < 300);
}

// AuditLog: bounded, chained, and refusals cannot flood what was done.
#include "agent/security/audit_log.h"

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "control/audit.h"
#include "tests/support/fakes.h"
#include "tests/support/test_support.h"

using herd::agent::AuditEntry;
using herd::agent::AuditLog;

TEST_CASE("refusals go apart at a bounded rate per caller and never push out what was done",
          "[unit]") {
  herd::testing::ScopedTempDir dir;
  herd::testing::FakeClock clock;
  AuditLog log(dir.path(), /*max_bytes=*/4000, /*keep=*/2, clock);
  REQUIRE(log.Append({"alice", "operator", "Exec", "argv[0]=true args=0", "ok exit=0"}).ok());
  // A flood: a fleet certificate's holder, and callers nobody knows.
  for (int i = 0; i < 5000; ++i) {
    REQUIRE(
        log.AppendRefusal({"viewer", "viewer", "Exec", "", "denied: needs operator"}, "AB").ok());
    REQUIRE(log.AppendRefusal({"anonymous:x", "", "Info", "", "denied: no certificate"}, "").ok());
  }
  // What was done is still there, in a file the refusals never touch.
  CHECK_FALSE(std::filesystem::exists(dir / "audit.log.1"));
  auto lines = log.Read(0, 100000);
  REQUIRE(lines.size() == 1 + AuditLog::kRefusalsPerCaller + AuditLog::kAnonymousPerMinute);
  CHECK_THAT(lines.front(), Catch::Contains("\"caller\":\"alice\""));
  // A minute later each caller's next line says how many were left out.
  clock.Advance(std::chrono::minutes(1));
  REQUIRE(log.AppendRefusal({"viewer", "viewer", "Exec", "", "denied"}, "AB").ok());
  REQUIRE(log.AppendRefusal({"anonymous:x", "", "Info", "", "denied"}, "").ok());
  lines = log.Read(0, 100000);
  CHECK_THAT(lines[lines.size() - 2],
             Catch::Contains("(4980 earlier refusals of this caller not recorded: rate limit)"));
  CHECK_THAT(lines.back(),
             Catch::Contains("(4970 earlier refusals of this caller not recorded: rate limit)"));
}

TEST_CASE("accepted entries are hash-chained across restarts, and an edit shows", "[unit]") {
  herd::testing::ScopedTempDir dir;
  {
    AuditLog log(dir.path());
    for (int i = 0; i < 3; ++i) REQUIRE(log.Append({"alice", "operator", "Exec", "", "ok"}).ok());
    REQUIRE(log.AppendRefusal({"bob", "viewer", "Exec", "", "denied"}, "CD").ok());
    CHECK(log.head().seq == 3);
  }
  AuditLog again(dir.path());  // a restarted herdd goes on from the last entry
  CHECK(again.head().seq == 3);
  REQUIRE(again.Append({"alice", "operator", "PutFile", "", "ok"}).ok());
  auto report = herd::control::VerifyAuditChain(again.Read(0, 100));
  CHECK(report.intact);
  CHECK(report.entries == 4);
  CHECK(report.first_seq == 1);
  CHECK(report.last_seq == 4);
  CHECK(report.head == again.head().hash);
  // Edited by hand: the entry after it no longer points at it.
  std::string text = herd::testing::ReadFile(dir / "audit.log");
  text.replace(text.find("\"result\":\"ok\""), 13, "\"result\":\"no\"");
  herd::testing::WriteFile(dir / "audit.log", text);
  report = herd::control::VerifyAuditChain(again.Read(0, 100));
  CHECK_FALSE(report.intact);
  REQUIRE(report.problems.size() == 1);
  CHECK(report.problems[0] ==
        "seq 2: the entry before it (seq 1) was changed after it was written");
  // Removed and reordered entries show too.
  auto lines = again.Read(0, 100);
  std::vector<std::string> removed = {lines[0], lines[2], lines[3], lines[4]};
  CHECK_THAT(herd::control::VerifyAuditChain(removed).problems.at(0),
             Catch::Contains("1 entries removed"));
  std::vector<std::string> swapped = {lines[0], lines[2], lines[1]};
  CHECK_FALSE(herd::control::VerifyAuditChain(swapped).intact);
}

TEST_CASE("a torn or foreign line neither hides the next entry nor fails a read", "[unit]") {
  herd::testing::ScopedTempDir dir;
  {
    AuditLog log(dir.path());
    REQUIRE(log.Append({"alice", "operator", "Exec", "", "ok"}).ok());
  }
  {
    // What a crash mid-line leaves for the next herdd.
    std::ofstream out(dir / "audit.log", std::ios::app);
    out << "{\"ts\":\"x\"}\n{\"ts\":null}\n[1,2]\n{\"ts\":17955858";  // no newline: torn
  }
  AuditLog log(dir.path());
  REQUIRE(log.Append({"bob", "admin", "PutFile", "", "ok"}).ok());
  auto lines = log.Read(0, 1000);
  REQUIRE(lines.size() == 2);
  CHECK_THAT(lines[0], Catch::Contains("\"caller\":\"alice\""));
  CHECK_THAT(lines[1], Catch::Contains("\"caller\":\"bob\""));
}

TEST_CASE("audit lines are JSON whatever the fields hold, and rotate past the size bound",
          "[unit]") {
  herd::testing::ScopedTempDir dir;
  AuditLog log(dir.path(), /*max_bytes=*/2000, /*keep=*/2);
  const std::string odd = "quote\" back\\ nl\n tab\t bad\xff utf8 \xc3\xa9";
  REQUIRE(log.Append({odd, "admin", "Exec", odd, "ok"}).ok());
  auto first = log.Read(0, 10);
  REQUIRE(first.size() == 1);
  auto j = nlohmann::json::parse(first[0]);
  CHECK(j["caller"] == "quote\" back\\ nl\n tab\t bad\xef\xbf\xbd utf8 \xc3\xa9");
  CHECK(j["args"] == j["caller"]);
  CHECK(j["method"] == "Exec");
  CHECK(j["ts"].get<double>() > 1.7e9);
  // ~120 bytes a line: 60 lines fill the file and both old ones several times.
  for (int i = 0; i < 60; ++i) {
    REQUIRE(log.Append({"alice", "operator", "Exec", "n=" + std::to_string(i), "ok"}, i % 2).ok());
  }
  CHECK(std::filesystem::exists(dir / "audit.log.1"));
  CHECK(std::filesystem::exists(dir / "audit.log.2"));
  CHECK_FALSE(std::filesystem::exists(dir / "audit.log.3"));
  CHECK(std::filesystem::file_size(dir / "audit.log") <= 2000 + 200);
  auto lines = log.Read(0, 1000);
  REQUIRE(lines.size() >= 20);
  CHECK(lines.size() < 61);
  // Oldest first, none lost between the files that are kept.
  const int from = 60 - static_cast<int>(lines.size());
  for (size_t i = 0; i < lines.size(); ++i) {
    CHECK(nlohmann::json::parse(lines[i])["args"] == "n=" + std::to_string(from + i));
  }
}

TEST_CASE("an audit log moved away or deleted by hand is started again at its path", "[unit]") {
  herd::testing::ScopedTempDir dir;
  AuditLog log(dir.path());
  REQUIRE(log.Append({"alice", "operator", "Exec", "first", "ok"}).ok());
  std::filesystem::rename(dir / "audit.log", dir / "moved.log");
  REQUIRE(log.Append({"alice", "operator", "Exec", "second", "ok"}, false).ok());
  std::filesystem::remove(dir / "audit.log");
  REQUIRE(log.Append({"alice", "operator", "Exec", "third", "ok"}).ok());
  auto lines = log.Read(0, 10);
  REQUIRE(lines.size() == 1);
  CHECK_THAT(lines[0], Catch::Contains("\"args\":\"third\""));
  std::ifstream moved(dir / "moved.log");
  std::string only;
  REQUIRE(std::getline(moved, only));
  CHECK_THAT(only, Catch::Contains("\"args\":\"first\""));
  CHECK_FALSE(std::getline(moved, only));
}

TEST_CASE("a line that cannot be written is reported, counted and logged, never dropped silently",
          "[unit]") {
  herd::testing::ScopedTempDir dir;
  // The log's folder is a file: no line can be written there.
  herd::testing::WriteFile(dir / "not-a-dir", "x");
  herd::agent::AuditLog audit(dir / "not-a-dir");
  int hook_calls = 0;
  audit.OnWriteError([&] { ++hook_calls; });
  herd::agent::AuditEntry e{"alice", "operator", "Exec", "argv[0]=true args=0", "ok exit=0"};
  const herd::Status first = audit.Append(e);
  CHECK_FALSE(first.ok());
  CHECK_THAT(first.message(), Catch::Contains("audit log"));
  CHECK_FALSE(audit.Append(e, false).ok());
  CHECK_FALSE(audit.AppendRefusal(e, "").ok());
  CHECK(hook_calls == 3);
  CHECK(audit.write_errors() == 3);
}

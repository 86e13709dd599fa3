// AuditLog: bounded, and outsiders cannot flood it.
#include "agent/security/audit_log.h"

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "tests/support/test_support.h"

using herd::agent::AuditEntry;
using herd::agent::AuditLog;

TEST_CASE("unauthenticated refusals are audited at a bounded rate, real entries always", "[unit]") {
  herd::testing::ScopedTempDir dir;
  AuditLog log(dir / "");
  for (int i = 0; i < AuditLog::kAnonymousPerMinute + 20; ++i) {
    REQUIRE(log.AppendAnonymous({"anonymous:x", "", "Info", "", "denied: no certificate"}).ok());
  }
  REQUIRE(log.Append({"alice", "operator", "Exec", "argv[0]=true args=0", "ok"}).ok());
  auto lines = log.Read(0, 1000);
  REQUIRE(lines.size() == static_cast<size_t>(AuditLog::kAnonymousPerMinute) + 1);
  CHECK_THAT(lines.back(), Catch::Contains("\"caller\":\"alice\""));
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
  CHECK_FALSE(audit.AppendAnonymous(e).ok());
  CHECK(hook_calls == 3);
  CHECK(audit.write_errors() == 3);
}

// AuditLog: bounded, and outsiders cannot flood it.
#include "agent/audit_log.h"

#include <catch2/catch.hpp>
#include <fstream>

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
  AuditLog log(dir.path());
  REQUIRE(log.Append({"alice", "operator", "Exec", "", "ok"}).ok());
  {
    std::ofstream out(dir / "audit.log", std::ios::app);
    out << "{\"ts\":\"x\"}\n{\"ts\":null}\n[1,2]\n{\"ts\":17955858";  // no newline: torn
  }
  REQUIRE(log.Append({"bob", "admin", "PutFile", "", "ok"}).ok());
  auto lines = log.Read(0, 1000);
  REQUIRE(lines.size() == 2);
  CHECK_THAT(lines[0], Catch::Contains("\"caller\":\"alice\""));
  CHECK_THAT(lines[1], Catch::Contains("\"caller\":\"bob\""));
}

// AuditLog: bounded, and outsiders cannot flood it.
#include "agent/audit_log.h"

#include <catch2/catch.hpp>

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

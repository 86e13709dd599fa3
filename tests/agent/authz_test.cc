// The one method -> role table every agent call is checked against.
#include "agent/authz.h"

#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <fstream>

#include "tests/support/test_support.h"

using herd::agent::Authorizer;
using herd::pki::Role;

TEST_CASE("each method needs the documented role, anything unlisted needs admin", "[unit]") {
  for (const char* m : {"Info", "Facts", "Health", "ReadAudit"}) {
    CHECK(Authorizer::RequiredRole(m) == Role::kViewer);
  }
  for (const char* m : {"Exec", "PutFile"}) CHECK(Authorizer::RequiredRole(m) == Role::kOperator);
  for (const char* m : {"SetRevocations", "BeginEnroll", "CompleteEnroll", "SomethingNew"}) {
    CHECK(Authorizer::RequiredRole(m) == Role::kAdmin);
  }
}

TEST_CASE("the revocation list is read forgivingly but never fails open", "[unit]") {
  herd::testing::ScopedTempDir dir;
  herd::agent::AuditLog audit(dir.path());
  const std::string path = dir / "revoked";
  {
    Authorizer none(nullptr, path, audit);  // no file yet: nothing revoked
    CHECK(none.LoadRevoked().ok());
  }
  { std::ofstream(path) << "5d5f3560 \r\n\n  ABCDEF\r\n"; }
  Authorizer a(nullptr, path, audit);
  REQUIRE(a.LoadRevoked().ok());
  CHECK(a.IsRevoked("5D5F3560"));
  CHECK(a.IsRevoked("ABCDEF"));
  { std::ofstream(path) << "ABCDEF\nnot-a-serial\n"; }
  auto bad = a.LoadRevoked();
  CHECK_THAT(bad.message(),
             Catch::Contains(path + ":2: 'not-a-serial' is not a certificate serial"));
  CHECK(a.IsRevoked("5D5F3560"));  // the list it had is kept
  REQUIRE(::unlink(path.c_str()) == 0);
  REQUIRE(::mkdir(path.c_str(), 0700) == 0);
  CHECK_THAT(a.LoadRevoked().message(), Catch::Contains("is a directory"));
}

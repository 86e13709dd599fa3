// Who may call what: the policies the Agent service declares beside its
// methods, by full method name, and the refusal of anything without one.
#include "agent/security/authz.h"

#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <fstream>

#include "agent/agent_service.h"
#include "tests/support/test_support.h"

using herd::agent::AgentService;
using herd::agent::Authorizer;
using herd::pki::Role;

TEST_CASE("each Agent method needs the documented role, by full method name", "[unit]") {
  herd::testing::ScopedTempDir dir;
  herd::agent::AuditLog audit(dir.path());
  Authorizer a(nullptr, dir.path(), audit);
  a.Allow(AgentService::Policies());
  const std::pair<const char*, Role> documented[] = {
      {"/herd.v1.Agent/Info", Role::kViewer},
      {"/herd.v1.Agent/Facts", Role::kViewer},
      {"/herd.v1.Agent/Health", Role::kViewer},
      {"/herd.v1.Agent/ReadAudit", Role::kViewer},
      {"/herd.v1.Agent/Exec", Role::kOperator},
      {"/herd.v1.Agent/PutFile", Role::kOperator},
      {"/herd.v1.Agent/Apply", Role::kOperator},
      {"/herd.v1.Agent/SetRevocations", Role::kViewer},
      {"/herd.v1.Agent/BeginEnroll", Role::kAdmin},
      {"/herd.v1.Agent/CompleteEnroll", Role::kAdmin},
  };
  for (const auto& [method, role] : documented) {
    const auto* p = a.PolicyFor(method);
    REQUIRE(p != nullptr);
    CHECK(p->role == role);
  }
  CHECK(AgentService::Policies().size() == std::size(documented));
  // Bare names, as they were once keyed, are not names of methods.
  CHECK(a.PolicyFor("Exec") == nullptr);
  // Only the enrolment calls are answered before the agent is enrolled.
  CHECK(a.PolicyFor("/herd.v1.Agent/BeginEnroll")->enrolment);
  CHECK_FALSE(a.PolicyFor("/herd.v1.Agent/Exec")->enrolment);
}

TEST_CASE("a method without a policy is refused for every caller, and audited", "[unit]") {
  herd::testing::ScopedTempDir dir;
  herd::agent::AuditLog audit(dir.path());
  // Plain-text mode makes every caller admin: even then, no policy, no call.
  Authorizer a(nullptr, dir.path(), audit);
  a.Allow(AgentService::Policies());
  auto known = a.Check("ipv4:127.0.0.1:5", "", "/herd.v1.Agent/Info");
  REQUIRE(known.ok());
  CHECK(known->role == Role::kAdmin);
  for (const char* m : {"/herd.v1.Agent/SomethingNew", "/herd.v1.Other/Info", "Info", ""}) {
    auto refused = a.Check("ipv4:127.0.0.1:5", "", m);
    REQUIRE_FALSE(refused.ok());
    CHECK(refused.status().code() == herd::StatusCode::kPermissionDenied);
    CHECK_THAT(refused.status().message(), Catch::Contains("has no access policy"));
  }
  const auto lines = audit.Read(0, 100);
  REQUIRE(lines.size() == 4);
  CHECK_THAT(lines[0], Catch::Contains("\"method\":\"SomethingNew\""));
  CHECK_THAT(lines[0], Catch::Contains("denied: SomethingNew has no access policy"));
}

TEST_CASE("the revocation list is read forgivingly but never fails open", "[unit]") {
  herd::testing::ScopedTempDir dir;
  herd::agent::AuditLog audit(dir.path());
  const std::string path = dir / "revoked";
  {
    Authorizer none(nullptr, dir.path(), audit);  // no file yet: nothing revoked
    CHECK(none.LoadRevoked().ok());
  }
  { std::ofstream(path) << "5d5f3560 \r\n\n  ABCDEF\r\n"; }
  Authorizer a(nullptr, dir.path(), audit);
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

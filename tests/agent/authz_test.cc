// The one method -> role table every agent call is checked against.
#include "agent/authz.h"

#include <catch2/catch.hpp>

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

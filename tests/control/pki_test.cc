#include "common/pki.h"

#include <sys/stat.h>

#include <catch2/catch.hpp>

#include "control/pki_store.h"
#include "control/revocation.h"
#include "tests/support/test_support.h"

using namespace herd;
using herd::testing::ReadFile;
using herd::testing::ScopedTempDir;

namespace {
unsigned Mode(const std::string& path) {
  struct stat st {};
  REQUIRE(::stat(path.c_str(), &st) == 0);
  return st.st_mode & 07777;
}
}  // namespace

TEST_CASE("ca init creates a P-256 CA with a private key only the owner reads", "[pki]") {
  ScopedTempDir dir;
  const std::string pki = dir / "pki";
  auto ca = control::InitFleetCa(pki, "test CA", 30);
  REQUIRE(ca.ok());
  CHECK(Mode(ca->key_path) == 0600);
  CHECK(Mode(pki) == 0700);
  CHECK(ca->info.is_ca);
  CHECK(ca->info.common_name == "test CA");
  CHECK(ca->info.not_after - ca->info.not_before > 29 * 86400);
  CHECK_THAT(ReadFile(ca->key_path), Catch::Contains("BEGIN PRIVATE KEY"));
  // a second init must not replace the CA
  std::string before = ReadFile(ca->key_path);
  auto again = control::InitFleetCa(pki, "other", 30);
  REQUIRE_FALSE(again.ok());
  CHECK_THAT(again.status().message(), Catch::Contains("already exists"));
  CHECK(ReadFile(ca->key_path) == before);
}

TEST_CASE("issued certificates carry their role and verify against the CA only", "[pki]") {
  ScopedTempDir dir;
  REQUIRE(control::InitFleetCa(dir / "a", "fleet A", 30).ok());
  REQUIRE(control::InitFleetCa(dir / "b", "fleet B", 30).ok());
  auto alice = control::IssueClientCert(dir / "a", "alice", pki::Role::kOperator, 7, "");
  REQUIRE(alice.ok());
  CHECK(Mode(alice->key_path) == 0600);
  REQUIRE(alice->info.role.has_value());
  CHECK(*alice->info.role == pki::Role::kOperator);
  CHECK(alice->info.common_name == "alice");
  CHECK_FALSE(alice->info.is_ca);
  const std::string cert = ReadFile(alice->cert_path);
  CHECK(pki::VerifyCert(ReadFile(dir / "a/ca.crt"), cert).ok());
  CHECK_FALSE(pki::VerifyCert(ReadFile(dir / "b/ca.crt"), cert).ok());
  auto dup = control::IssueClientCert(dir / "a", "alice", pki::Role::kViewer, 7, "");
  CHECK_THAT(dup.status().message(), Catch::Contains("already exists"));
  CHECK_THAT(
      control::IssueClientCert(dir / "none", "bob", pki::Role::kViewer, 7, "").status().message(),
      Catch::Contains("herd ca init"));
  CHECK_FALSE(control::IssueClientCert(dir / "a", "../evil", pki::Role::kViewer, 7, "").ok());
  // Never valid past the CA (30 days here).
  auto late = control::IssueClientCert(dir / "a", "carol", pki::Role::kViewer, 100'000, "");
  REQUIRE(late.ok());
  auto ca = pki::InspectCert(ReadFile(dir / "a/ca.crt"));
  REQUIRE(ca.ok());
  CHECK(late->info.not_after == ca->not_after);
}

TEST_CASE("roles include the ones below them", "[pki]") {
  using pki::Role;
  CHECK(pki::RoleAllows(Role::kAdmin, Role::kOperator));
  CHECK(pki::RoleAllows(Role::kOperator, Role::kViewer));
  CHECK_FALSE(pki::RoleAllows(Role::kViewer, Role::kOperator));
  CHECK_FALSE(pki::RoleAllows(Role::kOperator, Role::kAdmin));
  CHECK(*pki::ParseRole("admin") == Role::kAdmin);
  CHECK_FALSE(pki::ParseRole("root").ok());
}

TEST_CASE("cert list shows the CA first, each role, and who is revoked", "[pki]") {
  ScopedTempDir dir;
  const std::string pki = dir / "pki";
  REQUIRE(control::InitFleetCa(pki, "test CA", 30).ok());
  REQUIRE(control::IssueClientCert(pki, "zed", pki::Role::kViewer, 30, "").ok());
  REQUIRE(control::IssueClientCert(pki, "alice", pki::Role::kOperator, 30, "").ok());
  REQUIRE(control::RevokeCert(pki, "zed").ok());
  auto ids = control::ListIdentities(pki);
  REQUIRE(ids.ok());
  REQUIRE(ids->size() == 3);
  CHECK((*ids)[0].name == "ca");
  CHECK((*ids)[0].info.is_ca);
  CHECK((*ids)[1].name == "alice");
  CHECK((*ids)[1].info.role == pki::Role::kOperator);
  CHECK_FALSE((*ids)[1].revoked);
  CHECK((*ids)[2].name == "zed");
  CHECK((*ids)[2].revoked);
  CHECK_FALSE(control::ListIdentities(dir / "missing").ok());
}

TEST_CASE("revoking signs the next version, and a serial that matches nothing is warned about",
          "[pki]") {
  ScopedTempDir dir;
  const std::string pki = dir / "pki";
  REQUIRE(control::InitFleetCa(pki, "test CA", 30).ok());
  REQUIRE(control::IssueClientCert(pki, "zed", pki::Role::kViewer, 30, "").ok());
  // A folder from before signed lists: its serials are taken over.
  testing::WriteFile(pki + "/revoked.txt", "0a:bc\n");
  auto legacy = control::LoadRevocations(pki);
  REQUIRE(legacy.ok());
  CHECK(legacy->version == 0);
  CHECK(legacy->serials == std::set<std::string>{"ABC"});
  auto first = control::RevokeCert(pki, "zed");
  REQUIRE(first.ok());
  CHECK(first->warnings.empty());
  CHECK(first->list.version == 1);
  CHECK(first->list.serials.size() == 2);
  CHECK(ReadFile(pki + "/revoked.txt").empty());  // taken over
  auto second = control::RevokeCert(pki, "00:DE:AD");
  REQUIRE(second.ok());
  CHECK(second->serial == "DEAD");
  REQUIRE(second->warnings.size() == 1);
  CHECK_THAT(second->warnings[0], Catch::Contains("serial DEAD matches no certificate"));
  auto stored = control::LoadRevocations(pki);
  REQUIRE(stored.ok());
  CHECK(stored->version == 2);
  CHECK(stored->serials.count("DEAD") == 1);
  CHECK_FALSE(control::RevokeCert(pki, "not a serial").ok());
  // A list edited by hand no longer verifies, and herd says so.
  std::string text = ReadFile(pki + "/revocations");
  text.replace(text.find("revoke DEAD"), 11, "revoke DEAE");
  testing::WriteFile(pki + "/revocations", text);
  CHECK_THAT(control::LoadRevocations(pki).status().message(),
             Catch::Contains("not signed by this fleet's CA"));
}

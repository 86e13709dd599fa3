// What moved out of the CLI's main into control/: enrolment's checks before
// the device is touched, revocation's admin check before anything changes,
// the mux's status and stop, target selection and --timeout. No agent runs:
// each check must answer before one would be needed.
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdlib>

#include "control/enroll.h"
#include "control/mux.h"
#include "control/pki_store.h"
#include "control/revocation.h"
#include "control/session.h"
#include "tests/support/test_support.h"

using namespace herd;
using herd::testing::ReadFile;
using herd::testing::ScopedTempDir;
using herd::testing::WriteFile;

namespace {

// A PKI folder with a fleet CA and one identity of each role.
std::string MakePki(const ScopedTempDir& dir) {
  const std::string pki = dir / "pki";
  REQUIRE(control::InitFleetCa(pki, "test CA", 30).ok());
  REQUIRE(control::IssueClientCert(pki, "admin", pki::Role::kAdmin, 30, "").ok());
  REQUIRE(control::IssueClientCert(pki, "viewer", pki::Role::kViewer, 30, "").ok());
  return pki;
}

control::EnrollOptions Enrolment(const ScopedTempDir& dir, const std::string& pki) {
  control::EnrollOptions o;
  o.address = "127.0.0.1:1";  // nothing listens: reaching the device would fail as unreachable
  o.name = "node07";
  o.token = "0123456789abcdef0123";
  o.pki_dir = pki;
  o.identity = "admin";
  o.inventory_path = dir / "inventory.yaml";
  return o;
}

}  // namespace

TEST_CASE("enrolment refuses a name clash, bad labels or no token before touching the device",
          "[control][enroll]") {
  ScopedTempDir dir;
  const std::string pki = MakePki(dir);
  WriteFile(dir / "inventory.yaml", "hosts:\n  - name: node07\n    address: 10.0.0.7:7420\n");
  auto clash = control::EnrollDevice(Enrolment(dir, pki));
  CHECK(clash.exit == control::ExitCode::kHerdError);
  CHECK_THAT(clash.status.message(), Catch::Contains("already has a host named node07"));

  auto labels = Enrolment(dir, pki);
  labels.name = "node08";
  labels.labels = {"role=web", "zone"};
  auto bad = control::EnrollDevice(labels);
  CHECK(bad.exit == control::ExitCode::kHerdError);
  CHECK(bad.status.message() == "--labels expects KEY=VALUE, got 'zone'");

  auto no_token = Enrolment(dir, pki);
  no_token.token.clear();
  CHECK_THAT(control::EnrollDevice(no_token).status.message(),
             Catch::Contains("enroll needs the join token"));

  // With every check passed, the device is what fails: unreachable, exit 4,
  // and the inventory is as it was.
  auto fine = Enrolment(dir, pki);
  fine.name = "node08";
  auto unreachable = control::EnrollDevice(fine);
  CHECK(unreachable.exit == control::ExitCode::kHostUnreachable);
  CHECK(ReadFile(dir / "inventory.yaml") ==
        "hosts:\n  - name: node07\n    address: 10.0.0.7:7420\n");
}

TEST_CASE("revocation checks the pushing identity is an admin before changing the list",
          "[control][pki]") {
  ScopedTempDir dir;
  const std::string pki = MakePki(dir);
  auto refused = control::RevokeForPush(pki, "viewer", "viewer", true);
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.status().code() == StatusCode::kPermissionDenied);
  CHECK_THAT(refused.status().message(), Catch::Contains("nothing was revoked"));
  CHECK(control::LoadRevocations(pki)->version == 0);
  // Not pushing needs no admin; pushing as admin makes the next version.
  auto listed = control::RevokeForPush(pki, "viewer", "viewer", false);
  REQUIRE(listed.ok());
  CHECK(listed->list.serials.size() == 1);
  auto again = control::RevokeForPush(pki, "viewer", "admin", true);
  REQUIRE(again.ok());
  CHECK(again->list.serials.size() == 1);
  CHECK(again->list.version == 2);
}

TEST_CASE("mux status and stop answer when no mux runs", "[control][mux]") {
  ScopedTempDir dir;
  const std::string socket = control::MuxSocketPath(dir.path(), "admin");
  CHECK(socket == dir / "mux-admin.sock");
  CHECK(control::MuxStatus(socket).pid == 0);
  // A pid file of a process that is not a mux (this test) is not a mux.
  WriteFile(socket + ".pid", std::to_string(::getpid()) + "\n");
  CHECK(control::MuxStatus(socket).pid == 0);
  auto stopped = control::StopMux(socket);
  CHECK(stopped.status().code() == StatusCode::kNotFound);
}

TEST_CASE("targets: an empty TARGET never means every host, and --timeout is bounded",
          "[control][session]") {
  ScopedTempDir dir;
  WriteFile(
      dir / "inv.yaml",
      "hosts:\n  - name: a\n    address: 127.0.0.1:1\n  - name: b\n    address: 127.0.0.1:2\n");
  auto all = control::SelectTargets(dir / "inv.yaml", "", false, true, false);
  REQUIRE(all.ok());
  CHECK(all->hosts.size() == 2);
  auto given_empty = control::SelectTargets(dir / "inv.yaml", "", true, true, false);
  CHECK(given_empty.status().message() == "TARGET is empty; say 'all' to mean every host");
  CHECK_FALSE(control::SelectTargets(dir / "inv.yaml", "", false, false, false).ok());
  auto one = control::SelectTargets(dir / "inv.yaml", "b", true, false, false);
  REQUIRE(one.ok());
  REQUIRE(one->hosts.size() == 1);
  CHECK(one->hosts[0]->name == "b");

  using std::chrono::milliseconds;
  CHECK(*control::ResolveTimeout("", milliseconds(10'000)) == milliseconds(10'000));
  CHECK(*control::ResolveTimeout("2s", milliseconds(10'000)) == milliseconds(2'000));
  CHECK(control::ResolveTimeout("0s", milliseconds(1)).status().message() ==
        "--timeout must be positive");
  CHECK(control::ResolveTimeout("25h", milliseconds(1)).status().message() ==
        "--timeout must be at most 24h");
}

TEST_CASE("enrolment refuses names the inventory or the certificate would not take, first",
          "[control][enroll]") {
  ScopedTempDir dir;
  const std::string pki = MakePki(dir);
  for (const char* name : {"all", "a@b", "-rf", "..", "a b", ""}) {
    auto o = Enrolment(dir, pki);
    o.name = name;
    auto r = control::EnrollDevice(o);
    INFO(name);
    CHECK(r.exit == control::ExitCode::kHerdError);  // never reached the device (exit 4)
    CHECK_THAT(r.status.message(), Catch::Contains("is not a host name the inventory takes"));
  }
  // An inventory nobody may replace, root included.
  WriteFile(dir / "inventory.yaml", "hosts: []\n");
  if (std::system(("chattr +i " + dir / "inventory.yaml" + " 2>/dev/null").c_str()) == 0) {
    auto r = control::EnrollDevice(Enrolment(dir, pki));
    CHECK(r.exit == control::ExitCode::kHerdError);
    CHECK_THAT(r.status.message(), Catch::Contains("immutable"));
    CHECK(std::system(("chattr -i " + dir / "inventory.yaml").c_str()) == 0);
  } else {
    WARN("chattr does not work here: the immutable inventory case is not checked");
  }
}

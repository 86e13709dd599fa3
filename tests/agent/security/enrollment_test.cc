// Enrollment: the agent's side of the join-token handshake, with real keys
// and files in a temporary folder.
#include "agent/security/enrollment.h"

#include <sys/stat.h>

#include <catch2/catch.hpp>

#include "common/file.h"
#include "common/pki.h"
#include "tests/support/test_support.h"

using herd::StatusCode;
using herd::TlsFiles;
using herd::agent::Enrollment;
namespace pki = herd::pki;

namespace {

constexpr const char* kToken = "correct-horse-battery-staple";

struct Fixture {
  Fixture() {
    files = {dir / "ca.crt", dir / "agent.crt", dir / "agent.key"};
    auto key = pki::GenerateKeyPem();
    ca_key = *key;
    ca = *pki::SelfSignedCa(ca_key, "test CA", 30);
  }
  herd::Result<std::unique_ptr<Enrollment>> Open(const std::string& token = kToken) {
    return Enrollment::Open(files, token, dir / "join-token", "dev1");
  }
  std::string CertFor(const std::string& public_key) {
    pki::CertSpec spec;
    spec.common_name = "dev1";
    spec.dns_names = {"dev1"};
    spec.server = true;
    return *pki::IssueCert(ca, ca_key, public_key, spec);
  }
  // Runs both steps with `token`'s proofs; returns Complete's status.
  herd::Status Enrol(Enrollment& e, const std::string& token) {
    const std::string nonce = pki::RandomBytes(32);
    auto hello = e.Begin(nonce, pki::EnrolClientProof(token, nonce), false);
    if (!hello.ok()) return hello.status();
    const std::string cert = CertFor(hello->public_key_pem);
    auto done = e.Complete(hello->agent_nonce, cert, ca,
                           pki::EnrolCompleteProof(token, hello->agent_nonce, cert, ca), false);
    return done.status();
  }
  herd::testing::ScopedTempDir dir;
  TlsFiles files;
  std::string ca, ca_key;
};

unsigned Mode(const std::string& path) {
  struct stat st {};
  REQUIRE(::stat(path.c_str(), &st) == 0);
  return st.st_mode & 0777;
}

}  // namespace

TEST_CASE("a fresh agent makes its own key, a self-signed certificate and a token", "[unit]") {
  Fixture f;
  auto e = f.Open("");
  REQUIRE(e.ok());
  CHECK_FALSE((*e)->enrolled());
  CHECK(Mode(f.files.key) == 0600);
  CHECK(Mode(f.dir / "join-token") == 0600);
  CHECK((*e)->new_token().size() == 32);
  CHECK(herd::ReadFileToString(f.dir / "join-token").value_or("") == (*e)->new_token() + "\n");
  auto cert = *herd::ReadFileToString(f.files.cert);
  auto key = *herd::ReadFileToString(f.files.key);
  CHECK(pki::CertPublicKeyPem(cert).value_or("") == pki::PublicKeyPem(key).value_or("-"));
  // A second start keeps the key and the token.
  auto again = f.Open("");
  REQUIRE(again.ok());
  CHECK((*again)->new_token().empty());
  CHECK(*herd::ReadFileToString(f.files.key) == key);
}

TEST_CASE("enrolment installs the certificate and CA and burns the token", "[unit]") {
  Fixture f;
  auto e = f.Open();
  REQUIRE(e.ok());
  const auto key = *herd::ReadFileToString(f.files.key);
  REQUIRE(f.Enrol(**e, kToken).ok());
  CHECK((*e)->enrolled());
  CHECK((*e)->ca_pem() == f.ca);
  CHECK(*herd::ReadFileToString(f.files.ca) == f.ca);
  CHECK(pki::VerifyCert(f.ca, *herd::ReadFileToString(f.files.cert)).ok());
  CHECK(*herd::ReadFileToString(f.files.key) == key);  // the key never changed hands
  // The token is dead: a second enrolment with it is refused.
  auto reused = f.Enrol(**e, kToken);
  CHECK(reused.code() == StatusCode::kFailedPrecondition);
  CHECK_THAT(reused.message(), Catch::Contains("already enrolled"));
  // After a restart the agent knows it is enrolled.
  auto reopened = f.Open();
  REQUIRE(reopened.ok());
  CHECK((*reopened)->enrolled());
}

TEST_CASE("wrong tokens are refused and rate limited", "[unit]") {
  Fixture f;
  auto e = f.Open();
  REQUIRE(e.ok());
  for (int i = 0; i < 5; ++i) {  // five are free
    auto s = f.Enrol(**e, "wrong-token-wrong-token");
    CHECK(s.code() == StatusCode::kPermissionDenied);
    CHECK(s.message() == "wrong join token");
  }
  // The sixth failure locks enrolment.
  CHECK(f.Enrol(**e, "wrong-token-wrong-token").code() == StatusCode::kPermissionDenied);
  // Locked now: even the right token waits.
  auto locked = f.Enrol(**e, kToken);
  CHECK(locked.code() == StatusCode::kResourceExhausted);
  CHECK_THAT(locked.message(), Catch::Contains("too many failed enrolment attempts"));
  CHECK_FALSE((*e)->enrolled());
}

TEST_CASE("a replayed BeginEnroll is refused", "[unit]") {
  Fixture f;
  auto e = f.Open();
  REQUIRE(e.ok());
  const std::string nonce = pki::RandomBytes(32);
  const std::string proof = pki::EnrolClientProof(kToken, nonce);
  REQUIRE((*e)->Begin(nonce, proof, false).ok());
  auto replay = (*e)->Begin(nonce, proof, false);
  CHECK(replay.status().code() == StatusCode::kPermissionDenied);
  CHECK_THAT(replay.status().message(), Catch::Contains("replayed"));
}

TEST_CASE("Complete refuses a certificate for another key, a foreign CA, a stale nonce", "[unit]") {
  Fixture f;
  auto e = f.Open();
  REQUIRE(e.ok());
  const std::string nonce = pki::RandomBytes(32);
  auto hello = (*e)->Begin(nonce, pki::EnrolClientProof(kToken, nonce), false);
  REQUIRE(hello.ok());
  auto proof = [&](const std::string& n, const std::string& cert, const std::string& ca) {
    return pki::EnrolCompleteProof(kToken, n, cert, ca);
  };
  const std::string other = f.CertFor(*pki::PublicKeyPem(*pki::GenerateKeyPem()));
  auto wrong_key = (*e)->Complete(hello->agent_nonce, other, f.ca,
                                  proof(hello->agent_nonce, other, f.ca), false);
  CHECK(wrong_key.status().code() == StatusCode::kInvalidArgument);
  CHECK_THAT(wrong_key.status().message(), Catch::Contains("not for this device's key"));

  const std::string mine = f.CertFor(hello->public_key_pem);
  const std::string foreign_ca = *pki::SelfSignedCa(*pki::GenerateKeyPem(), "other", 30);
  auto foreign = (*e)->Complete(hello->agent_nonce, mine, foreign_ca,
                                proof(hello->agent_nonce, mine, foreign_ca), false);
  CHECK(foreign.status().code() == StatusCode::kInvalidArgument);

  auto stale =
      (*e)->Complete("not-the-nonce", mine, f.ca, proof("not-the-nonce", mine, f.ca), false);
  CHECK(stale.status().code() == StatusCode::kFailedPrecondition);
  CHECK_FALSE((*e)->enrolled());
  CHECK_FALSE(herd::ReadFileToString(f.files.ca).ok());
}

TEST_CASE("an admin renews the certificate of an enrolled agent, same key", "[unit]") {
  Fixture f;
  auto e = f.Open();
  REQUIRE(e.ok());
  REQUIRE(f.Enrol(**e, kToken).ok());
  const auto before = *herd::ReadFileToString(f.files.cert);
  auto hello = (*e)->Begin("", "", true);
  REQUIRE(hello.ok());
  CHECK(hello->enrolled);
  CHECK(hello->agent_proof.empty());
  const std::string cert = f.CertFor(hello->public_key_pem);
  auto done = (*e)->Complete(hello->agent_nonce, cert, f.ca, "", true);
  REQUIRE(done.ok());
  CHECK(done->renewal);
  CHECK(*herd::ReadFileToString(f.files.cert) == cert);
  CHECK(cert != before);
}

TEST_CASE("a configured join token must be long enough", "[unit]") {
  Fixture f;
  auto e = f.Open("short");
  REQUIRE_FALSE(e.ok());
  CHECK_THAT(e.status().message(), Catch::Contains("at least 16 characters"));
}

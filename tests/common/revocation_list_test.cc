#include "common/revocation_list.h"

#include <catch2/catch.hpp>

#include "common/pki.h"

using herd::ParseRevocationList;
using herd::SignRevocationList;
using herd::VerifyRevocationList;
namespace pki = herd::pki;

namespace {

struct Ca {
  Ca() {
    key = *pki::GenerateKeyPem();
    cert = *pki::SelfSignedCa(key, "test CA", 30);
  }
  std::string key, cert;
};

}  // namespace

TEST_CASE("serials are normalised one way: case, leading zeros and separators", "[common][pki]") {
  CHECK(*pki::NormaliseSerial("0a:bc:01") == "ABC01");
  CHECK(*pki::NormaliseSerial("ABC01") == "ABC01");
  CHECK(*pki::NormaliseSerial("00-0A-BC-01") == "ABC01");
  CHECK(*pki::NormaliseSerial(" abc01\r") == "ABC01");
  CHECK(*pki::NormaliseSerial("000") == "0");
  CHECK_FALSE(pki::NormaliseSerial("").ok());
  CHECK_FALSE(pki::NormaliseSerial("carol").ok());
  CHECK_FALSE(pki::NormaliseSerial(std::string(65, 'F')).ok());
  // Certificates report theirs in the same form.
  Ca ca;
  auto info = pki::InspectCert(ca.cert);
  REQUIRE(info.ok());
  CHECK(*pki::NormaliseSerial(info->serial) == info->serial);
}

TEST_CASE("a signed revocation list round-trips and verifies only against its CA",
          "[common][pki]") {
  Ca ca, other;
  auto list = SignRevocationList(3, {"0a:bc:01", "ff"}, 1700000000, ca.key);
  REQUIRE(list.ok());
  CHECK(list->serials == std::set<std::string>{"ABC01", "FF"});
  const std::string text = list->Text();
  CHECK(text.rfind("herd-revocations 1\nversion 3\nissued 1700000000\nrevoke ABC01\nrevoke FF\n"
                   "signature ",
                   0) == 0);
  auto parsed = ParseRevocationList(text, "list");
  REQUIRE(parsed.ok());
  CHECK(parsed->version == 3);
  CHECK(parsed->serials == list->serials);
  CHECK(parsed->Text() == text);
  CHECK(VerifyRevocationList(*parsed, ca.cert).ok());
  CHECK(VerifyRevocationList(*parsed, other.cert).code() == herd::StatusCode::kPermissionDenied);
  // Any edit of the signed part breaks the signature.
  std::string edited = text;
  edited.replace(edited.find("version 3"), 9, "version 4");
  auto tampered = ParseRevocationList(edited, "list");
  REQUIRE(tampered.ok());
  CHECK_FALSE(VerifyRevocationList(*tampered, ca.cert).ok());
}

TEST_CASE("malformed revocation lists name the line", "[common][pki]") {
  Ca ca;
  auto list = SignRevocationList(1, {"AB"}, 1, ca.key);
  REQUIRE(list.ok());
  const std::string sig = "signature " + list->Text().substr(list->Text().rfind(' ') + 1);
  CHECK(ParseRevocationList("herd-revocations 1\nversion 1\n", "l").status().message() ==
        "l: not a signed herd revocation list (no signature line)");
  CHECK(ParseRevocationList("herd-revocations 2\nversion 1\nissued 1\n" + sig, "l")
            .status()
            .message() == "l:1: expected 'herd-revocations 1'");
  CHECK(ParseRevocationList("herd-revocations 1\nversion 0\nissued 1\n" + sig, "l")
            .status()
            .message() == "l:2: expected 'version N' (N >= 1)");
  CHECK_THAT(ParseRevocationList("herd-revocations 1\nversion 1\nissued 1\nrevoke 0AB\n" + sig, "l")
                 .status()
                 .message(),
             Catch::Contains("l:4: '0AB' is not a sorted, normalised serial"));
  CHECK_THAT(ParseRevocationList(
                 "herd-revocations 1\nversion 1\nissued 1\nrevoke B\nrevoke A\n" + sig, "l")
                 .status()
                 .message(),
             Catch::Contains("l:5:"));
  CHECK_FALSE(ParseRevocationList(std::string("x\0y\n", 4), "l").ok());
  CHECK_FALSE(SignRevocationList(0, {}, 1, ca.key).ok());
}

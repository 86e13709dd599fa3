// The catalogue's index (common/app/catalog.h): its text and back, the
// signature check, and which version a device takes.
#include "common/app/catalog.h"

#include <catch2/catch.hpp>

using namespace herd::app;

namespace {

CatalogIndex Sample(const PublicKey& publisher) {
  const std::string line = PublicKeyLine(publisher);
  CatalogIndex index;
  index.sequence = 7;
  index.updated_unix = 1'800'000'000;
  CatalogApp& notes = index.apps["notes"];
  notes.publishers[KeyIdHex(publisher.id)] = line;
  const std::string sha(64, 'a');
  notes.versions = {{"1.0", 1, sha, 10, "stable", 1},
                    {"1.1", 2, std::string(64, 'b'), 11, "stable", 2},
                    {"1.2", 3, std::string(64, 'c'), 12, "beta", 3}};
  return index;
}

}  // namespace

TEST_CASE("a catalogue index reads back as it was written, and signed verifies",
          "[common][catalog]") {
  auto key = GenerateKey();
  REQUIRE(key.ok());
  const CatalogIndex index = Sample(key->pub);
  const std::string text = IndexText(index);
  auto back = ParseIndex(text, "index.json");
  REQUIRE(back.ok());
  CHECK(IndexText(*back) == text);
  CHECK(back->sequence == 7);
  CHECK(back->apps.at("notes").versions.at(2).channel == "beta");

  auto sig = Sign(*key, text, "herd catalog index sequence 7");
  REQUIRE(sig.ok());
  CHECK(VerifyIndex(key->pub, text, *sig, "i").ok());
  std::string altered = text;
  altered[altered.find("\"size\": 10")] = ' ';
  CHECK_THAT(VerifyIndex(key->pub, altered, *sig, "i").status().message(),
             Catch::Contains("bad signature"));
  auto other = GenerateKey();
  REQUIRE(other.ok());
  const auto wrong = VerifyIndex(other->pub, text, *sig, "i");
  CHECK(wrong.status().code() == herd::StatusCode::kPermissionDenied);
  CHECK_THAT(wrong.status().message(),
             Catch::Contains("signed by key " + KeyIdHex(key->id) + ", not by the catalogue key " +
                             KeyIdHex(other->id)));
}

TEST_CASE("a catalogue index with a bad field is refused, naming it", "[common][catalog]") {
  auto key = GenerateKey();
  REQUIRE(key.ok());
  const std::string good = IndexText(Sample(key->pub));
  auto with = [&](const std::string& from, const std::string& to) {
    std::string t = good;
    const auto at = t.find(from);
    REQUIRE(at != std::string::npos);
    t.replace(at, from.size(), to);
    return ParseIndex(t, "index.json").status().message();
  };
  CHECK_THAT(with("\"notes\"", "\"Notes\""), Catch::Contains("apps.Notes: app name"));
  CHECK_THAT(with("\"channel\": \"beta\"", "\"channel\": \"be ta\""),
             Catch::Contains("apps.notes version 1.2: channel may hold only"));
  CHECK_THAT(with("\"sequence\": 3", "\"sequence\": 1"),
             Catch::Contains("apps.notes version 1.2: sequences must ascend"));
  CHECK_THAT(with(std::string(64, 'c'), "cc"),
             Catch::Contains("apps.notes version 1.2: sha256 is not a digest"));
  CHECK_THAT(with("\"version\": \"1.2\"", "\"version\": \"1.1\""),
             Catch::Contains("version repeats"));
  CHECK_THAT(with("herd-catalog-index-v1", "v2"), Catch::Contains("format"));
  CHECK_THAT(with("\"size\": 10", "\"size\": -1"), Catch::Contains("index.json: index:"));
  CHECK_THAT(with("\"sequence\": 7", "\"sequence\": 0"), Catch::Contains("sequence"));
  CHECK_THAT(ParseIndex("[]", "index.json").status().message(),
             Catch::Contains("not a JSON object"));
  // A format of another JSON type is an error, not an exception.
  for (const char* format : {"1", "null", "[]", "{}", "true"}) {
    auto r = ParseIndex(std::string("{\"format\":") + format + "}", "index.json");
    CHECK_THAT(r.status().message(), Catch::Contains("format"));
  }
  CHECK_THAT(ParseIndex(std::string(kMaxIndexBytes + 1, ' '), "index.json").status().message(),
             Catch::Contains("larger than"));
}

TEST_CASE("a device takes the version named on its channel, or the newest there",
          "[common][catalog]") {
  auto key = GenerateKey();
  REQUIRE(key.ok());
  CatalogIndex index = Sample(key->pub);
  CHECK(ResolveVersion(index, "notes", "", "stable")->version == "1.1");
  CHECK(ResolveVersion(index, "notes", "", "beta")->version == "1.2");
  CHECK(ResolveVersion(index, "notes", "1.0", "stable")->sequence == 1);
  auto beta = ResolveVersion(index, "notes", "1.2", "stable");
  CHECK(beta.status().code() == herd::StatusCode::kFailedPrecondition);
  CHECK_THAT(beta.status().message(), Catch::Contains("notes 1.2 is on channel beta, not stable"));
  CHECK(ResolveVersion(index, "notes", "9.9", "stable").status().code() ==
        herd::StatusCode::kNotFound);
  CHECK(ResolveVersion(index, "other", "", "stable").status().code() ==
        herd::StatusCode::kNotFound);
  CHECK(ResolveVersion(index, "notes", "", "edge").status().code() == herd::StatusCode::kNotFound);
  // Below the minimum: no longer offered, by name or as the newest.
  index.apps["notes"].min_sequence = 2;
  CHECK_THAT(ResolveVersion(index, "notes", "1.0", "stable").status().message(),
             Catch::Contains("below the catalogue's minimum sequence 2"));
  index.apps["notes"].min_sequence = 3;
  CHECK(!ResolveVersion(index, "notes", "", "stable").ok());
}

TEST_CASE("NAME[@VERSION] splits and is checked", "[common][catalog]") {
  CHECK(ParseAppRef("notes")->version.empty());
  CHECK(ParseAppRef("notes@1.1")->version == "1.1");
  CHECK_THAT(ParseAppRef("Notes@1").status().message(), Catch::Contains("app name"));
  CHECK_THAT(ParseAppRef("notes@").status().message(), Catch::Contains("version"));
  CHECK_THAT(ParseAppRef("notes@1 2").status().message(), Catch::Contains("version"));
}

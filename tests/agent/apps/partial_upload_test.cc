// PartialUpload and TrimPartials on real files: what an upload cut short
// keeps, what a resume may claim, and how many partials stay.
#include "agent/apps/partial_upload.h"

#include <sys/stat.h>
#include <utime.h>

#include <catch2/catch.hpp>
#include <filesystem>

#include "common/hash.h"
#include "tests/support/test_support.h"

using namespace herd;
using namespace herd::testing;
namespace fs = std::filesystem;

TEST_CASE("a partial upload keeps what it received and resumes only from what it holds",
          "[agent][apps]") {
  ScopedTempDir dir;
  const std::string part = dir / "x.part", dest = dir / "x.herd";
  const std::string data(10000, 'd');
  const std::string sha = Sha256Hex(data);
  {
    auto u = agent::PartialUpload::Open(part, dest, data.size(), sha, 0);
    REQUIRE(u.ok());
    REQUIRE((*u)->Write(data.substr(0, 4000)).ok());
    auto short_commit = (*u)->Commit();
    CHECK(short_commit.code() == StatusCode::kInvalidArgument);
    CHECK_THAT(short_commit.message(), Catch::Contains("received 4000 of 10000 bytes"));
  }
  CHECK(agent::PartialBytes(part) == 4000);
  // Beyond what is held, or beyond the bundle: refused, and the bytes stay.
  auto beyond = agent::PartialUpload::Open(part, dest, data.size(), sha, 4001);
  CHECK(beyond.status().code() == StatusCode::kFailedPrecondition);
  CHECK(agent::PartialUpload::Open(part, dest, data.size(), sha, 10001).status().code() ==
        StatusCode::kInvalidArgument);
  CHECK(agent::PartialBytes(part) == 4000);
  // From less than is held: the rest is dropped and written again.
  auto u = agent::PartialUpload::Open(part, dest, data.size(), sha, 3000);
  REQUIRE(u.ok());
  CHECK(agent::PartialBytes(part) == 3000);
  CHECK_FALSE((*u)->Write(data.substr(3000) + "x").ok());  // more than announced
  REQUIRE((*u)->Write(data.substr(3000)).ok());
  REQUIRE((*u)->Commit().ok());
  CHECK(Sha256Hex(ReadFile(dest)) == sha);
  CHECK_FALSE(fs::exists(part));
}

TEST_CASE("a resumed partial whose bytes are not the bundle's is discarded at commit",
          "[agent][apps]") {
  ScopedTempDir dir;
  const std::string part = dir / "x.part", dest = dir / "x.herd";
  const std::string data(5000, 'd');
  WriteFile(part, std::string(2000, 'e'));
  auto u = agent::PartialUpload::Open(part, dest, data.size(), Sha256Hex(data), 2000);
  REQUIRE(u.ok());
  REQUIRE((*u)->Write(data.substr(2000)).ok());
  auto s = (*u)->Commit();
  CHECK(s.code() == StatusCode::kFailedPrecondition);
  CHECK_THAT(s.message(),
             Catch::Contains("checksum mismatch") && Catch::Contains("resumed at byte 2000"));
  CHECK_FALSE(fs::exists(part));
  CHECK_FALSE(fs::exists(dest));
  // An upload that received nothing leaves nothing.
  { REQUIRE(agent::PartialUpload::Open(part, dest, data.size(), Sha256Hex(data), 0).ok()); }
  CHECK_FALSE(fs::exists(part));
}

TEST_CASE("partials are kept newest first, a bounded number and for a bounded time",
          "[agent][apps]") {
  ScopedTempDir dir;
  const auto make = [&](const std::string& name, int age_hours) {
    WriteFile(dir / name, "bytes");
    struct utimbuf t {};
    t.actime = t.modtime = ::time(nullptr) - age_hours * 3600;
    REQUIRE(::utime((dir / name).c_str(), &t) == 0);
  };
  make("a.part", 1);
  make("b.part", 2);
  make("c.part", 3);
  make("d.part", 30);  // older than a day
  make("e.part", 4);
  make("f.herd", 50);  // not a partial: never touched
  CHECK(agent::TrimPartials(dir.path(), 3, std::chrono::hours(24)) == 2);
  CHECK(fs::exists(dir / "a.part"));
  CHECK(fs::exists(dir / "b.part"));
  CHECK(fs::exists(dir / "c.part"));
  CHECK_FALSE(fs::exists(dir / "d.part"));
  CHECK_FALSE(fs::exists(dir / "e.part"));
  CHECK(fs::exists(dir / "f.herd"));
}

TEST_CASE("a digest is held by one call at a time, until its claim ends", "[app]") {
  agent::UploadClaims claims;
  std::string sha(64, 'a');
  {
    auto first = agent::UploadClaim::Take(claims, sha);
    REQUIRE(first.held());
    sha.assign(64, 'b');  // the claim keeps its own copy
    CHECK(claims.Held(std::string(64, 'a')));
    CHECK_FALSE(agent::UploadClaim::Take(claims, std::string(64, 'a')).held());
    agent::UploadClaim moved = std::move(first);
    CHECK(moved.held());
    CHECK_FALSE(first.held());  // NOLINT(bugprone-use-after-move): checked on purpose
    CHECK(claims.Held(std::string(64, 'a')));
  }
  CHECK_FALSE(claims.Held(std::string(64, 'a')));
  auto again = agent::UploadClaim::Take(claims, std::string(64, 'a'));
  CHECK(again.held());
  again.Reset();
  CHECK_FALSE(claims.Held(std::string(64, 'a')));
}

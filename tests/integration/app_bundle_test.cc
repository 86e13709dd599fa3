// herd app keygen | pack | sign | inspect with the real CLI, and minisign's
// format checked with Debian's real minisign in both directions.
#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "tests/support/test_support.h"

using namespace herd::testing;
using namespace std::chrono_literals;
using nlohmann::json;

namespace {

// A small app folder and its packed bundle in `dir`.
std::string PackedApp(const ScopedTempDir& dir) {
  const std::string app = dir / "notes";
  std::filesystem::create_directories(app);
  WriteFile(app + "/app.yaml",
            "name: notes\nversion: \"1.0\"\nsequence: 1\ncommand: [/bin/sh, run.sh]\n");
  WriteFile(app + "/run.sh", "exec sleep 1000\n");
  auto pack = RunHerd({"app", "pack", app, "-o", dir / "notes.herd"});
  INFO(pack.err);
  REQUIRE(pack.exit_code == 0);
  CHECK_THAT(pack.out, Catch::Contains("packed notes 1.0 into " + dir / "notes.herd"));
  return dir / "notes.herd";
}

json InspectJson(const std::string& bundle, const std::vector<std::string>& extra) {
  std::vector<std::string> args = {"-o", "json", "app", "inspect", bundle};
  args.insert(args.end(), extra.begin(), extra.end());
  auto r = RunHerd(args);
  INFO(r.err);
  return json::parse(Lines(r.out).at(0));
}

}  // namespace

TEST_CASE("herd signs what minisign verifies, and verifies what minisign signs",
          "[integration][app]") {
  ScopedTempDir dir;
  const std::string bundle = PackedApp(dir);
  auto keygen = RunHerd({"app", "keygen", "acme", "--dir", dir.path()});
  REQUIRE(keygen.exit_code == 0);
  struct stat st {};
  REQUIRE(::stat((dir / "acme.key").c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);
  // Never overwritten.
  auto again = RunHerd({"app", "keygen", "acme", "--dir", dir.path()});
  CHECK(again.exit_code == 1);
  CHECK_THAT(again.err, Catch::Contains("refusing to overwrite"));

  REQUIRE(RunHerd({"app", "sign", bundle, "--key", dir / "acme.key"}).exit_code == 0);
  auto out = RunHerd({"app", "inspect", bundle, "--key", dir / "acme.pub", "--manifest-out",
                      dir / "manifest.json", "--signatures-out", dir / "sigs"});
  REQUIRE(out.exit_code == 0);
  CHECK_THAT(out.out, Catch::Contains("matches the manifest") && Catch::Contains("verified"));
  // minisign checks herd's signature with herd's public key.
  auto checked = RunProgram(
      "minisign", {"-V", "-p", dir / "acme.pub", "-m", dir / "manifest.json", "-x", dir / "sigs"},
      30s);
  INFO(checked.out << checked.err);
  CHECK(checked.exit_code == 0);

  // minisign signs the manifest; herd takes the signature and verifies it.
  REQUIRE(RunProgram("minisign", {"-G", "-W", "-p", dir / "ms.pub", "-s", dir / "ms.key"}, 30s)
              .exit_code == 0);
  REQUIRE(RunProgram("minisign",
                     {"-S", "-s", dir / "ms.key", "-m", dir / "manifest.json", "-x",
                      dir / "ms.minisig", "-t", "signed with minisign"},
                     30s)
              .exit_code == 0);
  REQUIRE(RunHerd({"app", "sign", bundle, "--minisig", dir / "ms.minisig"}).exit_code == 0);
  auto j = InspectJson(bundle, {"--key", dir / "acme.pub", "--key", dir / "ms.pub"});
  REQUIRE(j["signatures"].size() == 2);
  for (const auto& s : j["signatures"]) CHECK(s["status"] == "verified");
  CHECK(j["signatures"][1]["trusted_comment"] == "signed with minisign");
  CHECK(j["payload_ok"] == true);
  CHECK(j["manifest"]["app"]["name"] == "notes");
}

TEST_CASE("inspect finds a bundle whose payload or manifest was changed", "[integration][app]") {
  ScopedTempDir dir;
  const std::string bundle = PackedApp(dir);
  REQUIRE(RunHerd({"app", "keygen", "k", "--dir", dir.path()}).exit_code == 0);
  REQUIRE(RunHerd({"app", "sign", bundle, "--key", dir / "k.key"}).exit_code == 0);
  std::string raw = ReadFile(bundle);
  // The manifest's command, changed in place (same length): the signature fails.
  const auto at = raw.find("run.sh");
  REQUIRE(at != std::string::npos);
  std::string forged = raw;
  forged.replace(at, 6, "evil.s");
  WriteFile(dir / "forged.herd", forged);
  auto r = RunHerd({"app", "inspect", dir / "forged.herd", "--key", dir / "k.pub"});
  CHECK(r.exit_code != 0);
  // Not a bundle at all.
  WriteFile(dir / "junk.herd", "junk");
  auto junk = RunHerd({"app", "inspect", dir / "junk.herd"});
  CHECK(junk.exit_code == 1);
  CHECK_THAT(junk.err, Catch::Contains("junk.herd"));
}

// Catalogues with the real CLI, real agents, a real `herd catalog serve`
// and real minisign: installs by name, fetched and verified by each device;
// the refusals (tampered index, unknown catalogue key, an index rollback, a
// version from another channel, a bundle listed under another app's name);
// the server's and the agent's metrics; a rollout by name.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <vector>

#include "common/hash.h"
#include "tests/integration/app_test_support.h"
#include "tests/support/test_support.h"

using namespace herd::testing;
using herd::testing::apps::All;
using herd::testing::apps::Fleet;
using herd::testing::apps::OneDevice;
using herd::testing::apps::Publisher;
using herd::testing::apps::RunRollout;
using herd::testing::apps::ServedCatalog;
using namespace std::chrono_literals;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

CliResult Herd(const std::string& inv, std::vector<std::string> args) {
  args.insert(args.begin(), {"-i", inv, "-o", "json", "--no-progress"});
  return RunHerd(args, 60s);
}

json FirstLine(const CliResult& r) {
  INFO(r.out << r.err);
  REQUIRE(!Lines(r.out).empty());
  return json::parse(Lines(r.out).at(0));
}

// A catalogue with notes 1.1 and 1.2 on stable and 1.3 on beta, served,
// and one agent that trusts it and the publisher.
struct Fixture {
  Publisher pub;
  ScopedTempDir dir;
  std::string cat = dir / "catalog";
  Fixture() {
    auto init = RunHerd({"catalog", "init", cat});
    INFO(init.err);
    REQUIRE(init.exit_code == 0);
    Add(pub.Bundle(1), {"--publisher", pub.dir / "acme.pub"});
    Add(pub.Bundle(2));
    Add(pub.Bundle(3), {"--channel", "beta"});
  }
  void Add(const std::string& bundle, std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"catalog", "add", cat, bundle};
    args.insert(args.end(), extra.begin(), extra.end());
    auto r = RunHerd(args);
    INFO(r.out << r.err);
    REQUIRE(r.exit_code == 0);
  }
  std::string Config(const std::string& url, const std::string& key) {
    return pub.Config("  catalogs:\n    - url: " + url + "\n      key: " + key + "\n");
  }
};

}  // namespace

TEST_CASE("herd app install NAME fetches from the device's catalogue, verified end to end",
          "[catalog]") {
  Fixture f;
  ServedCatalog served(f.cat);
  OneDevice d(f.Config(served.url(), f.cat + "/catalog.pub"));

  // The catalogue as its publisher sees it.
  auto list = RunHerd({"-o", "json", "catalog", "show", f.cat, "notes"});
  REQUIRE(list.exit_code == 0);
  REQUIRE(Lines(list.out).size() == 3);
  CHECK(json::parse(Lines(list.out)[2])["channel"] == "beta");

  // No version: the newest on the device's channel (stable), fetched whole.
  auto r = Herd(d.inv, {"app", "install", "all", "notes"});
  CHECK(r.exit_code == 0);
  json j = FirstLine(r)["data"];
  CHECK(j["version"] == "1.2");
  CHECK(j["channel"] == "stable");
  CHECK(j["already_installed"] == false);
  CHECK(j["downloaded_bytes"] == fs::file_size(f.pub.dir / "notes-2.herd"));
  CHECK(j["index_sequence"] == 4);  // init, then three adds

  // Again: nothing fetched, nothing done.
  r = Herd(d.inv, {"app", "install", "all", "notes@1.2"});
  INFO(r.out << r.err);
  CHECK(r.exit_code == 0);
  j = FirstLine(r)["data"];
  CHECK(j["already_installed"] == true);
  CHECK(j["downloaded_bytes"] == 0);

  // A version on another channel, and a channel the owner did not allow.
  r = Herd(d.inv, {"app", "install", "all", "notes@1.3"});
  CHECK(r.exit_code != 0);
  CHECK_THAT(r.out, Catch::Contains("notes 1.3 is on channel beta, not stable"));
  r = Herd(d.inv, {"app", "install", "all", "notes", "--channel", "beta"});
  CHECK(r.exit_code != 0);
  CHECK_THAT(r.out, Catch::Contains("this device takes channel stable only, not beta"));
  r = Herd(d.inv, {"app", "install", "all", "nosuch"});
  CHECK(r.exit_code != 0);
  CHECK_THAT(r.out, Catch::Contains("the catalogue has no app nosuch"));

  // What the server sent, and what the agent counted.
  const std::string served_metrics = HttpGet(served.url() + "metrics");
  CHECK_THAT(served_metrics, Catch::Contains("herd_catalog_bundles_served_total 1"));
  CHECK_THAT(served_metrics,
             Catch::Contains("herd_catalog_bytes_served_total{file=\"bundle\"} " +
                             std::to_string(fs::file_size(f.pub.dir / "notes-2.herd"))));
  const std::string agent_metrics = HttpGet("http://" + d.agent.metrics_address() + "/metrics");
  CHECK_THAT(agent_metrics,
             Catch::Contains("herd_catalog_installs_total{outcome=\"installed\"} 1"));
  CHECK_THAT(agent_metrics,
             Catch::Contains("herd_catalog_installs_total{outcome=\"already_installed\"} 1"));
  CHECK(d.agent.AuditHas("InstallFromCatalog", "installed from " + served.url()));
}

TEST_CASE("a device refuses a tampered index, an unknown catalogue key and an index rollback",
          "[catalog]") {
  Fixture f;
  ServedCatalog served(f.cat);

  SECTION("an index signed by a key the device was not given") {
    ScopedTempDir other;
    REQUIRE(RunHerd({"catalog", "init", other / "c"}).exit_code == 0);
    OneDevice d(f.Config(served.url(), other / "c/catalog.pub"));
    auto r = Herd(d.inv, {"app", "install", "all", "notes"});
    CHECK(r.exit_code != 0);
    CHECK_THAT(r.out, Catch::Contains("not by the catalogue key"));
    CHECK_THAT(r.out, Catch::Contains("permission_denied"));
  }

  SECTION("an index altered after it was signed") {
    OneDevice d(f.Config(served.url(), f.cat + "/catalog.pub"));
    std::string index = ReadFile(f.cat + "/index.json");
    const auto at = index.find("\"min_sequence\": 0");
    REQUIRE(at != std::string::npos);
    index.replace(at, 17, "\"min_sequence\": 3");
    WriteFile(f.cat + "/index.json", index);
    auto r = Herd(d.inv, {"app", "install", "all", "notes"});
    CHECK(r.exit_code != 0);
    CHECK_THAT(r.out, Catch::Contains("bad signature"));
    CHECK(FirstLine(Herd(d.inv, {"apps", "all"}))["data"]["apps"].empty());
  }

  SECTION("an older index once a newer one was seen") {
    OneDevice d(f.Config(served.url(), f.cat + "/catalog.pub"));
    const std::string old_index = ReadFile(f.cat + "/index.json");
    const std::string old_sig = ReadFile(f.cat + "/index.json.minisig");
    f.Add(f.pub.Bundle(4));
    auto r = Herd(d.inv, {"app", "install", "all", "notes"});
    CHECK(r.exit_code == 0);
    CHECK(FirstLine(r)["data"]["version"] == "1.4");
    // Someone serves the old (validly signed) index again.
    WriteFile(f.cat + "/index.json", old_index);
    WriteFile(f.cat + "/index.json.minisig", old_sig);
    r = Herd(d.inv, {"app", "install", "all", "notes@1.1"});
    CHECK(r.exit_code != 0);
    CHECK_THAT(r.out, Catch::Contains("index sequence 4 is older than sequence 5"));
    CHECK_THAT(r.out, Catch::Contains("rollback"));
  }
}

TEST_CASE("a bundle listed under another app's name is refused, whoever signed the index",
          "[catalog]") {
  if (::access("/usr/bin/minisign", X_OK) != 0) {
    WARN("skipped: no minisign (scripts/install-deps.sh installs it)");
    return;
  }
  Fixture f;
  // A catalogue written by hand and signed with the real minisign: it lists
  // notes's bundle as app "other".
  ScopedTempDir dir;
  const std::string cat = dir / "c";
  fs::create_directories(cat + "/bundles");
  json index = json::parse(ReadFile(f.cat + "/index.json"));
  json entry = index["apps"]["notes"];
  entry["versions"] = json::array({entry["versions"][0]});
  index["apps"] = {{"other", entry}};
  WriteFile(cat + "/index.json", index.dump(2));
  const std::string sha = entry["versions"][0]["sha256"];
  fs::copy_file(f.cat + "/bundles/" + sha + ".herd", cat + "/bundles/" + sha + ".herd");
  auto gen = RunProgram("minisign", {"-G", "-W", "-p", dir / "m.pub", "-s", dir / "m.key"}, 20s);
  REQUIRE(gen.exit_code == 0);
  auto sign = RunProgram("minisign",
                         {"-S", "-s", dir / "m.key", "-m", cat + "/index.json", "-x",
                          cat + "/index.json.minisig", "-t", "hand-made index"},
                         20s);
  INFO(sign.err);
  REQUIRE(sign.exit_code == 0);

  ServedCatalog served(cat);
  OneDevice d(f.Config(served.url(), dir / "m.pub"));
  auto r = Herd(d.inv, {"app", "install", "all", "other"});
  CHECK(r.exit_code != 0);
  CHECK_THAT(r.out, Catch::Contains("the catalogue lists other 1.1 (sequence 1) with a bundle of "
                                    "notes 1.1 (sequence 1): refused"));
  // Nothing of it stays on the device.
  auto apps = Herd(d.inv, {"apps", "all"});
  CHECK(FirstLine(apps)["data"]["apps"].empty());
}

namespace {

// `n` agents of the sample app (Fleet) whose config names a served
// catalogue holding `versions` of notes, all on 1.0 installed from it.
struct CatalogFleet {
  ScopedTempDir cdir;
  std::string cat = cdir / "catalog";
  // The catalogue is served before the agents start (their config names it)
  // and filled once the sample app's bundles exist.
  ServedCatalog served{Init(cat)};
  Fleet f;
  CatalogFleet(int n, const std::vector<std::string>& versions)
      : f(n, Extra(n, served.url(), cat)) {
    for (const auto& v : versions) {
      auto add = RunHerd(
          {"catalog", "add", cat, f.notes.Bundle(v), "--publisher", f.notes.dir / "publisher.pub"});
      INFO(add.err);
      REQUIRE(add.exit_code == 0);
    }
    REQUIRE(apps::Herd(f.inv, {"app", "install", "all", "notes@1.0"}).exit_code == 0);
    REQUIRE(apps::Herd(f.inv, {"app", "activate", "all", "notes", "1.0"}).exit_code == 0);
  }
  static std::string Init(const std::string& cat) {
    REQUIRE(RunHerd({"catalog", "init", cat}).exit_code == 0);
    return cat;
  }
  static std::map<int, std::string> Extra(int n, const std::string& url, const std::string& cat) {
    std::map<int, std::string> extra;
    for (int k = 0; k < n; ++k) {
      extra[k] = "  catalogs:\n    - url: " + url + "\n      key: " + cat + "/catalog.pub\n";
    }
    return extra;
  }
};

}  // namespace

TEST_CASE(
    "a rollout from a catalogue: every host fetches NAME@VERSION itself, and a broken "
    "version halts at its canary",
    "[integration][app][rollout][catalog]") {
  if (!apps::CanRunApps()) return;
  CatalogFleet c(3, {"1.0", "1.1", "1.2"});
  Fleet& f = c.f;

  auto good = RunRollout(f, {"notes@1.1", "all", "--batch", "1", "--yes"});
  CHECK(good.exit_code == 0);
  const json start = good.Of("rollout_started").at(0);
  CHECK(start["sequence"] == 2);
  CHECK(start["bundle_sha256"] == herd::Sha256Hex(ReadFile(f.notes.Bundle("1.1"))));
  CHECK(good.Of("host_updated").size() == 3);
  CHECK(f.Versions("notes") == All(3, "1.1"));

  // Resumed from the hosts alone (a fresh CLI state): all on it already.
  const std::string good_id = start["rollout_id"];
  auto resumed = RunRollout(f, {"resume", good_id, "all", "--yes"});
  CHECK(resumed.exit_code == 0);
  CHECK(resumed.Of("rollout_resumed").at(0)["on_version"] == 3);
  CHECK(resumed.Of("rollout_started").at(0)["version"] == "1.1");

  auto bad = RunRollout(f, {"notes@1.2", "all", "--batch", "1", "--yes"});
  CHECK(bad.exit_code == 2);
  CHECK(bad.Of("halted").size() == 1);
  CHECK(f.Versions("notes") == All(3, "1.1"));
  CHECK_FALSE(f.Installed("node2", "notes", 3));
  CHECK_FALSE(f.Installed("node3", "notes", 3));

  // Each host fetched each version it installed once: 3 + 3 + the canary's 1.2.
  CHECK_THAT(HttpGet(c.served.url() + "metrics"),
             Catch::Contains("herd_catalog_bundles_served_total 7"));
  // The devices count the rollout's steps.
  CHECK_THAT(
      HttpGet("http://" + f.agents[1]->metrics_address() + "/metrics"),
      Catch::Contains("herd_app_rollout_steps_total{app=\"notes\",outcome=\"committed\"} 1"));
  CHECK_THAT(
      HttpGet("http://" + f.agents[0]->metrics_address() + "/metrics"),
      Catch::Contains("herd_app_rollout_steps_total{app=\"notes\",outcome=\"rolled-back\"} 1"));
}

TEST_CASE(
    "herd apply rolls an app entry out from the catalogue, and the next apply changes nothing",
    "[integration][app][apply][catalog]") {
  if (!apps::CanRunApps()) return;
  CatalogFleet c(2, {"1.0", "1.1"});
  Fleet& f = c.f;
  const std::string spec = c.cdir / "fleet.yaml";
  WriteFile(spec,
            "entries:\n  - hosts: all\n    apps:\n      - {name: notes, version: \"1.1\", "
            "canary: 1, batch: \"1\"}\n");

  auto check = apps::Herd(f.inv, {"apply", spec, "--check"});
  INFO(check.out << check.err);
  CHECK(check.exit_code == 5);
  CHECK_THAT(check.out, Catch::Contains("node1: changed app notes: 1.0 -> 1.1"));
  CHECK(f.Versions("notes") == All(2, "1.0"));

  auto applied = apps::Herd(f.inv, {"-o", "json", "apply", spec});
  INFO(applied.out << applied.err);
  CHECK(applied.exit_code == 0);
  CHECK_THAT(applied.out, Catch::Contains("\"event\":\"rollout_started\""));
  CHECK(f.Versions("notes") == All(2, "1.1"));

  auto again = apps::Herd(f.inv, {"-o", "json", "apply", spec});
  CHECK(again.exit_code == 0);
  CHECK(again.out.find("rollout_started") == std::string::npos);
  CHECK(apps::Herd(f.inv, {"drift", spec}).exit_code == 0);
}

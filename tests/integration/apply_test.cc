// herd apply, herd drift and herd provision with real agents and the real
// CLI (docs/provisioning.md): the first apply changes, the second nothing;
// --check changes no byte on any device and exits 5; templates with facts
// and labels; each guard; a spec error before any host is touched; a
// failing command fails its host alone; root items refused where the
// owner forbids root; a hand edit shows as drift; a fresh device
// provisioned in one command.
#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>

#include "tests/support/test_support.h"

using namespace herd::testing;
using namespace std::chrono_literals;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

// Every file and folder below `root`: its mode, and a file's bytes.
std::map<std::string, std::string> Tree(const std::string& root) {
  std::map<std::string, std::string> out;
  if (!fs::exists(root)) return out;
  for (const auto& e : fs::recursive_directory_iterator(root)) {
    struct stat st {};
    REQUIRE(::lstat(e.path().c_str(), &st) == 0);
    std::string v = std::to_string(st.st_mode) + ":" + std::to_string(st.st_mtime);
    if (S_ISREG(st.st_mode)) v += ":" + ReadFile(e.path());
    out[e.path()] = v;
  }
  return out;
}

// node1 (role=web) and node2 (role=db), and a spec giving each host files
// of its own below `root` (both agents share this machine).
struct Setup {
  ScopedTempDir dir;
  std::string root = dir / "hosts";
  AgentProcess node1{"node1"}, node2{"node2"};
  std::string inv;
  Setup() {
    REQUIRE(node1.ready());
    REQUIRE(node2.ready());
    inv = WriteInventory(dir, {&node1, &node2});
    fs::create_directories(root + "/node1");
    fs::create_directories(root + "/node2");
  }
  std::string Spec(const std::string& extra = "") const {
    std::string y = "entries:\n";
    for (const char* n : {"node1", "node2"}) {
      const std::string d = root + "/" + n;
      y += std::string("  - hosts: ") + n + "\n" +
           "    labels: {tier: " + (std::string(n) == "node1" ? "front" : "back") + "}\n" +
           "    directories:\n      - {path: " + d + "/data, mode: \"0750\"}\n" + "    files:\n" +
           "      - path: " + d + "/motd\n" +
           "        content: \"{{ host.name }} is {{ labels.role }}/{{ labels.tier }} on {{ "
           "facts.os }}\\n\"\n" +
           "        template: true\n        mode: \"0640\"\n" + "      - {path: " + d +
           "/token, content: \"s3cret-" + n + "\\n\", secret: true}\n" + "    commands:\n" +
           "      - {name: cache, run: [mkdir, " + d + "/cache], creates: " + d + "/cache}\n" +
           "      - {name: once, shell: \"echo x >> " + d + "/once\", unless: \"test -e " + d +
           "/once\"}\n" + "      - {name: never, shell: \"touch " + d +
           "/never\", onlyif: \"test -e " + d + "/nothing\"}\n";
    }
    const std::string path = dir / "fleet.yaml";
    WriteFile(path, y + extra);
    return path;
  }
  CliResult Herd(std::vector<std::string> args) const {
    args.insert(args.begin(), {"-i", inv, "--no-progress"});
    return RunHerd(args, 120s);
  }
};

// Each host's JSON result line, by host.
std::map<std::string, json> Hosts(const CliResult& r) {
  std::map<std::string, json> out;
  for (const auto& line : Lines(r.out)) {
    const json j = json::parse(line);
    if (j.value("type", "") == "host") out[j["host"]] = j;
  }
  return out;
}

}  // namespace

TEST_CASE(
    "herd apply: check first changes no byte, then one apply converges, the next changes nothing",
    "[integration][apply]") {
  Setup s;
  const std::string spec = s.Spec();
  const auto before = Tree(s.root);

  // --check: exit 5, and nothing on either device changed.
  auto check = s.Herd({"-o", "json", "apply", spec, "--check"});
  INFO(check.out << check.err);
  CHECK(check.exit_code == 5);
  CHECK(Tree(s.root) == before);
  auto hosts = Hosts(check);
  REQUIRE(hosts.size() == 2);
  // The label, the directory, 2 files, 2 commands (`never` is held back by onlyif).
  CHECK(hosts["node1"]["data"]["changed"] == 6);
  auto facts = s.Herd({"-o", "json", "facts", "node1"});
  CHECK(facts.out.find("\"tier\"") == std::string::npos);  // labels not kept yet

  auto first = s.Herd({"-o", "json", "apply", spec});
  INFO(first.out << first.err);
  CHECK(first.exit_code == 0);
  const std::string d1 = s.root + "/node1";
  CHECK(ReadFile(d1 + "/motd").rfind("node1 is web/front on ", 0) == 0);
  CHECK(ReadFile(s.root + "/node2/motd").rfind("node2 is db/back on ", 0) == 0);
  struct stat st {};
  REQUIRE(::stat((d1 + "/motd").c_str(), &st) == 0);
  CHECK((st.st_mode & 07777) == 0640);
  REQUIRE(::stat((d1 + "/data").c_str(), &st) == 0);
  CHECK((st.st_mode & 07777) == 0750);
  CHECK(fs::is_directory(d1 + "/cache"));
  CHECK(ReadFile(d1 + "/once") == "x\n");
  CHECK_FALSE(fs::exists(d1 + "/never"));  // onlyif was false
  // The agent keeps the labels: facts show them.
  facts = s.Herd({"-o", "json", "facts", "node1"});
  CHECK_THAT(facts.out, Catch::Contains("\"tier\":\"front\""));

  // The second apply changes nothing, and a check after it finds nothing.
  const auto converged = Tree(s.root);
  auto second = s.Herd({"-o", "json", "apply", spec});
  CHECK(second.exit_code == 0);
  for (const auto& [name, h] : Hosts(second)) {
    INFO(h.dump());
    CHECK(h["data"]["changed"] == 0);
    CHECK(h["data"]["failed"] == 0);
  }
  CHECK(Tree(s.root) == converged);
  CHECK(ReadFile(d1 + "/once") == "x\n");  // `unless` held it back
  CHECK(s.Herd({"apply", spec, "--check"}).exit_code == 0);

  // A hand edit on node2 is drift; --diff shows it, never the secret's bytes.
  WriteFile(s.root + "/node2/motd", "edited by hand\n");
  WriteFile(s.root + "/node2/token", "other\n");
  auto drift = s.Herd({"-o", "json", "drift", spec});
  INFO(drift.out << drift.err);
  CHECK(drift.exit_code == 5);
  std::vector<json> lines;
  for (const auto& l : Lines(drift.out)) lines.push_back(json::parse(l));
  REQUIRE(lines.size() == 2);
  for (const auto& l : lines) {
    CHECK(l["host"] == "node2");
    CHECK(l["outcome"] == "changed");
  }
  CHECK(lines[0]["key"] == s.root + "/node2/motd");
  auto diff = s.Herd({"apply", spec, "node2", "--check", "--diff"});
  CHECK(diff.exit_code == 5);
  CHECK_THAT(diff.out, Catch::Contains("-edited by hand"));
  CHECK_THAT(diff.out, Catch::Contains("+node2 is db/back on "));
  CHECK_THAT(diff.out, Catch::Contains("(secret: its content differs)"));
  CHECK(diff.out.find("s3cret") == std::string::npos);
  CHECK(diff.out.find("other") == std::string::npos);
  CHECK(ReadFile(s.root + "/node2/motd") == "edited by hand\n");  // --check wrote nothing
  auto folded = s.Herd({"--fold", "apply", spec, "--check"});
  CHECK_THAT(folded.out, Catch::Contains("changed file " + s.root + "/node2/motd: content"));
  // Apply puts it back on node2 alone.
  auto fix = s.Herd({"-o", "json", "apply", spec});
  CHECK(fix.exit_code == 0);
  CHECK(Hosts(fix)["node1"]["data"]["changed"] == 0);
  CHECK(Hosts(fix)["node2"]["data"]["changed"] == 2);
  CHECK(s.Herd({"drift", spec}).exit_code == 0);
}

TEST_CASE("a spec error names file and line before any host is touched", "[integration][apply]") {
  Setup s;
  const std::string spec =
      s.Spec("  - hosts: all\n    files:\n      - {path: /tmp/x, mode: \"999\"}\n");
  auto r = s.Herd({"apply", spec});
  CHECK(r.exit_code == 1);
  CHECK_THAT(r.err, Catch::Contains(spec + ":"));
  CHECK_THAT(r.err, Catch::Contains("mode"));
  CHECK(Tree(s.root + "/node1").empty());
  CHECK_FALSE(s.node1.AuditHas("Apply", ""));
  // A selector naming no such host, the same.
  const std::string unknown = s.Spec("  - hosts: node9\n    labels: {a: b}\n");
  auto u = s.Herd({"apply", unknown});
  CHECK(u.exit_code == 1);
  CHECK_THAT(u.err, Catch::Contains("node9"));
  CHECK(Tree(s.root + "/node2").empty());
}

TEST_CASE(
    "a failing command fails its host alone, and root items are refused where the owner "
    "forbids root",
    "[integration][apply]") {
  Setup s;
  const std::string d1 = s.root + "/node1", d2 = s.root + "/node2";
  const std::string spec = s.Spec(
      "  - hosts: node1\n    commands:\n      - {name: broken, shell: \"echo no >&2; exit 3\"}\n"
      "  - hosts: node2\n    files:\n      - {path: " +
      d2 + "/root-only, content: x, root: true}\n");
  auto r = s.Herd({"-o", "json", "apply", spec});
  INFO(r.out << r.err);
  CHECK(r.exit_code == 2);
  auto hosts = Hosts(r);
  CHECK(hosts["node1"]["outcome"] == "failed");
  CHECK_THAT(hosts["node1"]["error"].get<std::string>(), Catch::Contains("broken: exited 3: no"));
  CHECK(hosts["node2"]["outcome"] == "failed");
  bool refused = false;
  for (const auto& item : hosts["node2"]["data"]["items"]) {
    if (item["key"] == d2 + "/root-only") {
      refused = item["outcome"] == "failed" &&
                item["detail"].get<std::string>().find("does not allow root") != std::string::npos;
    }
  }
  CHECK(refused);
  CHECK_FALSE(fs::exists(d2 + "/root-only"));
  // node1's other items were done before the failing command; node2's too.
  CHECK(fs::exists(d1 + "/motd"));
  CHECK(fs::exists(d2 + "/motd"));
}

TEST_CASE("herd provision: a fresh device enrolled, in the inventory, labelled and configured",
          "[integration][apply]") {
  ScopedTempDir dir;
  AgentProcess fresh("attic", {}, /*enrolled=*/false);
  REQUIRE(fresh.ready());
  WriteFile(dir / "token", fresh.join_token() + "\n");
  const std::string inventory = dir / "inventory.yaml";
  const std::string out = dir / "attic-motd";
  WriteFile(dir / "fleet.yaml", "entries:\n  - hosts: role=nas\n    files:\n      - {path: " + out +
                                    ", content: \"{{ host.name }} {{ labels.zone }}\\n\", "
                                    "template: true}\n");
  auto r =
      RunHerd({"-i", inventory, "provision", fresh.grpc_address(), "--token-file", dir / "token",
               "--name", "attic", "--labels", "role=nas,zone=home", "--spec", dir / "fleet.yaml"},
              120s);
  INFO(r.out << r.err);
  REQUIRE(r.exit_code == 0);
  CHECK_THAT(r.out, Catch::Contains("enrolled attic"));
  CHECK(ReadFile(out) == "attic home\n");
  CHECK_THAT(ReadFile(inventory), Catch::Contains("attic"));
  auto facts = RunHerd({"-i", inventory, "-o", "json", "facts", "attic"});
  CHECK(facts.exit_code == 0);
  CHECK_THAT(facts.out, Catch::Contains("\"zone\":\"home\""));
  auto again = RunHerd({"-i", inventory, "apply", dir / "fleet.yaml", "--check"});
  CHECK(again.exit_code == 0);
}

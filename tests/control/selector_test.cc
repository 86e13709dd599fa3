#include "control/selector.h"

#include <catch2/catch.hpp>

#include "control/inventory.h"

using namespace herd::control;

namespace {

Inventory Fleet() {
  auto inv = ParseInventory(R"(hosts:
  - {name: node01, address: h1, labels: {role: web, zone: eu}}
  - {name: node02, address: h2, labels: {role: web, zone: us}}
  - {name: node03, address: h3, labels: {role: db, zone: eu}}
  - {name: node04, address: h4, labels: {role: db, zone: us-east}}
  - {name: gw, address: h5}
groups:
  web: [node01, node02]
  eu: {selector: "zone=eu"}
)",
                            "fleet.yaml");
  REQUIRE(inv.ok());
  return *inv;
}

std::vector<std::string> Names(const std::string& sel) {
  static Inventory inv = Fleet();
  auto hosts = SelectHosts(inv, sel, true);
  INFO(sel);
  REQUIRE(hosts.ok());
  std::vector<std::string> out;
  for (const auto* h : *hosts) out.push_back(h->name);
  return out;
}

std::string Error(const std::string& sel) {
  static Inventory inv = Fleet();
  auto hosts = SelectHosts(inv, sel, false);
  INFO(sel);
  REQUIRE_FALSE(hosts.ok());
  return hosts.status().message();
}

using V = std::vector<std::string>;

}  // namespace

TEST_CASE("selector terms pick hosts", "[control][selector]") {
  CHECK(Names("all") == V{"node01", "node02", "node03", "node04", "gw"});
  CHECK(Names("node*") == V{"node01", "node02", "node03", "node04"});
  CHECK(Names("node0?") == V{"node01", "node02", "node03", "node04"});
  CHECK(Names("node[02-03]") == V{"node02", "node03"});
  CHECK(Names("gw") == V{"gw"});
  CHECK(Names("@web") == V{"node01", "node02"});
  CHECK(Names("@eu") == V{"node01", "node03"});
  CHECK(Names("role=db") == V{"node03", "node04"});
  CHECK(Names("zone!=eu") == V{"node02", "node04", "gw"});
  CHECK(Names("zone=us*") == V{"node02", "node04"});
}

TEST_CASE("selector operators combine sets with precedence", "[control][selector]") {
  CHECK(Names("@web,role=db") == V{"node01", "node02", "node03", "node04"});
  CHECK(Names("role=web+zone=eu") == V{"node01"});
  CHECK(Names("all~node*") == V{"gw"});
  CHECK(Names("node*~@web") == V{"node03", "node04"});
  // '+' binds tighter than ',', ',' tighter than '~'
  CHECK(Names("role=db+zone=eu,gw") == V{"node03", "gw"});
  CHECK(Names("node*,gw~role=web") == V{"node03", "node04", "gw"});
  CHECK(Names("(@web,gw)+zone=eu") == V{"node01"});
  CHECK(Names(" @web , gw ") == V{"node01", "node02", "gw"});
  CHECK(Names("node[01-02,04]") == V{"node01", "node02", "node04"});
}

TEST_CASE("bad selectors point at the offending character", "[control][selector]") {
  CHECK_THAT(Error("@web,,db"), Catch::Contains("position 5"));
  CHECK_THAT(Error("role==web"), Catch::Contains("position 4: unknown label operator '=='"));
  CHECK_THAT(Error("role~=web"), Catch::Contains("unknown label operator '~='"));
  CHECK_THAT(Error("role<3"), Catch::Contains("unknown label operator '<'"));
  CHECK_THAT(Error("@nope"), Catch::Contains("unknown group 'nope'"));
  CHECK_THAT(Error("node99"), Catch::Contains("no host named 'node99'"));
  CHECK_THAT(Error("(@web"), Catch::Contains("unclosed '('"));
  CHECK_THAT(Error("@web)"), Catch::Contains("unmatched ')'"));
  CHECK_THAT(Error("web$"), Catch::Contains("unexpected character '$'"));
  CHECK_THAT(Error("!node01"), Catch::Contains("exclude hosts with A~B"));
  CHECK_THAT(Error("node[3-1]"), Catch::Contains("descending"));
  CHECK_THAT(Error(""), Catch::Contains("expected a host name"));
  // the caret line sits under the position
  CHECK_THAT(Error("@web,,db"), Catch::Contains("\n  @web,,db\n       ^"));
}

TEST_CASE("an empty selection is an error unless allowed", "[control][selector]") {
  Inventory inv = Fleet();
  auto none = SelectHosts(inv, "role=cache", false);
  REQUIRE_FALSE(none.ok());
  CHECK_THAT(none.status().message(), Catch::Contains("matches no host"));
  CHECK_THAT(none.status().message(), Catch::Contains("--allow-empty"));
  auto allowed = SelectHosts(inv, "role=cache", true);
  REQUIRE(allowed.ok());
  CHECK(allowed->empty());
}

TEST_CASE("selector blow-ups finish: ranges are never expanded, groups evaluated once",
          "[control][selector]") {
  // Thirty million-name ranges in one selector.
  std::string ranges;
  for (int i = 0; i < 30; ++i) ranges += std::string(i ? "," : "") + "node[1-999999]";
  CHECK(Names(ranges) == V{});  // node01 is padded: [1-...] reads no padding
  std::string padded;
  for (int i = 0; i < 30; ++i) padded += std::string(i ? "," : "") + "node[01-999999]";
  CHECK(Names(padded) == V{"node01", "node02", "node03", "node04"});

  // Twelve groups that each name the previous one four times: 4^12 paths,
  // one evaluation each.
  std::string yaml = "hosts:\n";
  for (int i = 0; i < 200; ++i) yaml += "  - {name: n" + std::to_string(i) + ", address: a}\n";
  yaml += "groups:\n  g0: {selector: \"n1*\"}\n";
  for (int i = 1; i <= 12; ++i) {
    const std::string prev = "@g" + std::to_string(i - 1);
    yaml += "  g" + std::to_string(i) + ": {selector: \"" + prev + "," + prev + "+" + prev + "~(" +
            prev + "~" + prev + ")\"}\n";
  }
  auto inv = ParseInventory(yaml, "big.yaml");
  REQUIRE(inv.ok());
  auto hosts = SelectHosts(*inv, "@g12", false);
  REQUIRE(hosts.ok());
  CHECK(hosts->size() == 111);  // n1, n10-n19, n100-n199

  // Beyond the documented bounds: a clear error, not an exhausted process.
  CHECK_THAT(Error(std::string(5000, 'a')), Catch::Contains("the limit is 4096"));
  CHECK_THAT(Error("node[1-1234567890123456789]"), Catch::Contains("up to 18 digits"));
}

#include "control/inventory.h"

#include <catch2/catch.hpp>

#include "tests/support/test_support.h"

using herd::control::NormaliseAddress;
using herd::control::ParseInventory;

namespace {
const char* kGood = R"(hosts:
  - name: node01
    address: 10.0.0.1:7420
    labels: {role: web, zone: eu}
  - name: node02
    address: node02.example.net
    metrics: 10.0.0.2:9100
  - name: v6
    address: "[::1]:7500"
groups:
  web: [node01]
  eu: {selector: "zone=eu"}
)";
}

TEST_CASE("inventory parses hosts, labels and groups", "[control][inventory]") {
  auto inv = ParseInventory(kGood, "inv.yaml");
  REQUIRE(inv.ok());
  REQUIRE(inv->hosts.size() == 3);
  CHECK(inv->hosts[0].address == "10.0.0.1:7420");
  CHECK(inv->hosts[0].labels.at("zone") == "eu");
  CHECK(inv->hosts[0].metrics == "10.0.0.1:9420");
  CHECK(inv->hosts[1].address == "node02.example.net:7420");
  CHECK(inv->hosts[1].metrics == "10.0.0.2:9100");
  CHECK(inv->hosts[2].address == "[::1]:7500");
  CHECK(inv->groups.at("web").members == std::vector<std::string>{"node01"});
  CHECK(inv->groups.at("eu").selector == "zone=eu");
}

TEST_CASE("empty inventory is valid and empty", "[control][inventory]") {
  auto inv = ParseInventory("", "empty.yaml");
  REQUIRE(inv.ok());
  CHECK(inv->hosts.empty());
}

TEST_CASE("malformed inventories name file, line and problem", "[control][inventory]") {
  struct Case {
    const char* yaml;
    const char* expect;
  } cases[] = {
      {"hosts: [\n  - name: a\n", "bad.yaml:"},
      {"hosts:\n  - name: a\n    address: 1.2.3.4\n  - name: a\n    address: 1.2.3.5\n",
       "bad.yaml:4:5: duplicate host 'a' (first at line 2)"},
      {"hosts:\n  - name: a\n    address: 'not an address'\n", "bad.yaml:3:14: host 'a'"},
      {"hosts:\n  - name: a\n    address: 1.2.3.4:99999\n", "port '99999' is not 1-65535"},
      {"hosts:\n  - name: a\n    address: ::1\n", "IPv6 addresses need brackets"},
      {"hosts:\n  - name: a\n", "bad.yaml:2:5: host 'a' has no 'address'"},
      {"hosts:\n  - name: a\n    address: h\n    colour: red\n", "unknown host key 'colour'"},
      {"hostz: []\n", "bad.yaml:1:1: unknown key 'hostz'"},
      {"hosts:\n  - name: a\n    address: h\ngroups:\n  g: [b]\n",
       "bad.yaml:5:7: group 'g': unknown host 'b'"},
      {"hosts: []\ngroups:\n  g: {selector: 'role~=x'}\n", "unknown label operator '~='"},
      {"hosts: []\ngroups:\n  g: {selector: '@nope'}\n",
       "bad.yaml:3: group 'g': selector '@nope': position 0: unknown group 'nope'"},
      {"hosts: []\ngroups:\n  a: {selector: '@b'}\n  b: {selector: '@a'}\n", "refers to itself"},
      {"hosts:\n  - name: 'bad name'\n    address: h\n", "invalid host name 'bad name'"},
      {"hosts:\n  - name: all\n    address: h\n", "bad.yaml:2:11: 'all' is reserved"},
      {"hosts:\n  - name: a\n    address: h1\n    address: h2\n",
       "bad.yaml:4:5: duplicate key 'address' under 'hosts' (first at line 3)"},
      {"hosts:\n  - name: a\n    address: h\n    labels: {role: web, role: db}\n",
       "bad.yaml:4:25: duplicate key 'role' under 'hosts.labels' (first at line 4)"},
      {"hosts: []\ngroups:\n  g: []\n  g: []\n",
       "bad.yaml:4:3: duplicate key 'g' under 'groups' (first at line 3)"},
      {"hosts: []\nhosts: []\n", "bad.yaml:2:1: duplicate key 'hosts' (first at line 1)"},
  };
  for (const auto& c : cases) {
    INFO(c.yaml);
    auto inv = ParseInventory(c.yaml, "bad.yaml");
    REQUIRE_FALSE(inv.ok());
    CHECK_THAT(inv.status().message(), Catch::Contains(c.expect));
  }
}

TEST_CASE("addresses normalise with a default port", "[control][inventory]") {
  CHECK(*NormaliseAddress("h") == "h:7420");
  CHECK(*NormaliseAddress("127.0.0.1:1") == "127.0.0.1:1");
  CHECK(*NormaliseAddress("[fe80::1]") == "[fe80::1]:7420");
  CHECK_FALSE(NormaliseAddress("").ok());
  CHECK_FALSE(NormaliseAddress("h:").ok());
  CHECK_FALSE(NormaliseAddress("h:0").ok());
  CHECK_FALSE(NormaliseAddress("[::1").ok());
  CHECK_FALSE(NormaliseAddress("-bad-:1").ok());
}

TEST_CASE("an endless inventory file is refused at 64 MiB, not read until memory runs out",
          "[control][inventory]") {
  auto inv = herd::control::LoadInventory("/dev/zero");
  REQUIRE_FALSE(inv.ok());
  CHECK_THAT(inv.status().message(), Catch::Contains("/dev/zero: larger than 64 MiB"));
}

TEST_CASE("the sample inventory loads", "[control][inventory][configs]") {
  auto inv = herd::control::LoadInventory(herd::testing::SourceDir() + "/configs/inventory.yaml");
  REQUIRE(inv.ok());
  CHECK(inv->hosts.size() == 4);
  CHECK(inv->groups.count("not-db") == 1);
}

TEST_CASE(
    "inventory refuses impossible IPv4 addresses, schemes, flag-like names and second "
    "documents",
    "[control][inventory]") {
  CHECK(NormaliseAddress("256.1.1.1").status().message() ==
        "address '256.1.1.1': '256.1.1.1' is not an IPv4 address (four numbers 0-255)");
  CHECK_FALSE(NormaliseAddress("10.0.0").ok());
  CHECK(*NormaliseAddress("10.0.0.255") == "10.0.0.255:7420");
  CHECK_THAT(NormaliseAddress("http://node1:7420").status().message(),
             Catch::Contains("without a scheme like http://"));
  for (const char* name : {"-rf", "..", ".hidden", "all"}) {
    auto inv = ParseInventory(
        std::string("hosts:\n  - name: \"") + name + "\"\n    address: 127.0.0.1:1\n", "inv.yaml");
    INFO(name);
    CHECK_FALSE(inv.ok());
    CHECK_THAT(inv.status().message(), Catch::Contains("inv.yaml:2:"));
  }
  auto two =
      ParseInventory("hosts: []\n---\nhosts:\n  - name: a\n    address: 127.0.0.1:1\n", "inv.yaml");
  CHECK_THAT(two.status().message(),
             Catch::StartsWith("inv.yaml:2:") &&
                 Catch::EndsWith("a second YAML document starts here (after --- or a stray ','); "
                                 "an inventory is one document"));
  // yaml-cpp's LoadAll never returns on this one; the loader answers at once.
  auto stray = ParseInventory("[a],", "inv.yaml");
  CHECK_THAT(stray.status().message(), Catch::Contains("a second YAML document starts here"));
}

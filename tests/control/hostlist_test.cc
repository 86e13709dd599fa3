#include "control/hostlist.h"

#include <catch2/catch.hpp>

using herd::control::FoldHosts;
using herd::control::HostPattern;

TEST_CASE("folding collapses numbered hosts into ranges", "[control][fold]") {
  CHECK(FoldHosts({"node01", "node02", "node03", "node04", "node05", "node09"}) ==
        "node[01-05,09]");
  CHECK(FoldHosts({"node3", "node1", "node2"}) == "node[1-3]");
  CHECK(FoldHosts({"web1"}) == "web1");
  CHECK(FoldHosts({}) == "");
}

TEST_CASE("folding keeps padding, prefixes and suffixes apart", "[control][fold]") {
  CHECK(FoldHosts({"node08", "node09", "node10", "node11"}) == "node[08-11]");
  CHECK(FoldHosts({"node1", "node01"}) == "node01,node1");
  CHECK(FoldHosts({"a1.eu", "a2.eu", "a1.us"}) == "a1.us,a[1-2].eu");
  CHECK(FoldHosts({"db", "web2", "web1", "cache"}) == "cache,db,web[1-2]");
  CHECK(FoldHosts({"rack1-node1", "rack1-node2", "rack2-node1"}) == "rack1-node[1-2],rack2-node1");
}

namespace {
bool Match(const std::string& pattern, const std::string& name) {
  auto p = HostPattern::Parse(pattern);
  REQUIRE(p.ok());
  return p->Matches(name);
}
}  // namespace

TEST_CASE("a folded list matches exactly the names it folds", "[control][fold]") {
  const std::vector<std::string> names = {"node01", "node02", "node03", "node09"};
  for (const auto& n : names) CHECK(Match(FoldHosts(names), n));
  for (const char* other : {"node04", "node1", "node001", "node10", "node", "xnode01", "node01x"}) {
    CHECK_FALSE(Match("node[01-03,09]", other));
  }
  CHECK(Match("r[1-2]n[1-2]", "r2n1"));
  CHECK_FALSE(Match("r[1-2]n[1-2]", "r3n1"));
  CHECK(Match("node[1-10]", "node10"));
  CHECK_FALSE(Match("node[1-10]", "node01"));  // no padding: none read
  CHECK(Match("node[08-11]", "node09"));
  CHECK(Match("plain", "plain"));
  CHECK(Match("web*-[1-3]", "web-eu-2"));
  CHECK(Match("n?de[1-2]", "node2"));
  CHECK(Match("node[1-999999999999999999]", "node123456789012345678"));
}

TEST_CASE("a pattern is matched without expanding it, however large its ranges",
          "[control][fold]") {
  // A million names a range would expand to, fifteen times over: matched in
  // time proportional to the pattern and the name.
  std::string big;
  for (int i = 0; i < 15; ++i) big += "[1-999999]";
  auto p = HostPattern::Parse("n" + big);
  REQUIRE(p.ok());
  CHECK_FALSE(p->Matches("n1"));
  CHECK(p->Matches("n" + std::string(15, '7')));
  // Stars that would make a backtracking matcher exponential.
  auto stars = HostPattern::Parse(std::string(40, '*') + std::string(40, 'a') + "b");
  REQUIRE(stars.ok());
  CHECK_FALSE(stars->Matches(std::string(200, 'a')));
}

TEST_CASE("patterns reject malformed ranges", "[control][fold]") {
  CHECK_FALSE(HostPattern::Parse("node[1-").ok());
  CHECK_FALSE(HostPattern::Parse("node[]").ok());
  CHECK_FALSE(HostPattern::Parse("node[a-b]").ok());
  CHECK_FALSE(HostPattern::Parse("node[5-1]").ok());
  CHECK_FALSE(HostPattern::Parse("node1]").ok());
  CHECK_FALSE(HostPattern::Parse("node[1-1234567890123456789]").ok());
  CHECK(HostPattern::Parse("node[5-1]").status().message().find("descending") != std::string::npos);
}

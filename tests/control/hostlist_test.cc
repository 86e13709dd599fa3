#include "control/hostlist.h"

#include <catch2/catch.hpp>

using herd::control::ExpandHosts;
using herd::control::FoldHosts;

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

TEST_CASE("expansion is the inverse of folding", "[control][fold]") {
  auto e = ExpandHosts("node[01-03,09]");
  REQUIRE(e.ok());
  CHECK(*e == std::vector<std::string>{"node01", "node02", "node03", "node09"});
  auto f = ExpandHosts(FoldHosts(*e));
  REQUIRE(f.ok());
  CHECK(*f == *e);
  auto two = ExpandHosts("r[1-2]n[1-2]");
  REQUIRE(two.ok());
  CHECK(two->size() == 4);
  CHECK(*ExpandHosts("plain") == std::vector<std::string>{"plain"});
}

TEST_CASE("expansion rejects malformed ranges", "[control][fold]") {
  CHECK_FALSE(ExpandHosts("node[1-").ok());
  CHECK_FALSE(ExpandHosts("node[]").ok());
  CHECK_FALSE(ExpandHosts("node[a-b]").ok());
  CHECK_FALSE(ExpandHosts("node[5-1]").ok());
  CHECK_FALSE(ExpandHosts("node1]").ok());
  CHECK(ExpandHosts("node[5-1]").status().message().find("descending") != std::string::npos);
}

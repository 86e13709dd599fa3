#include "agent/config.h"

#include <catch2/catch.hpp>

#include "common/app/minisign.h"
#include "tests/support/test_support.h"

using herd::testing::SourceDir;

TEST_CASE("the sample agent config loads", "[agent][config][configs]") {
  auto c = herd::agent::LoadAgentConfig(SourceDir() + "/configs/agent.yaml");
  REQUIRE(c.ok());
  CHECK(c->listen == "127.0.0.1:7420");
  CHECK(c->labels.at("role") == "web");
  CHECK(c->exec.kill_grace.count() == 2000);
  CHECK(c->exec.max_concurrent == 64);
}

TEST_CASE("bad agent configs name file, line and key", "[agent][config]") {
  using herd::agent::ParseAgentConfig;
  CHECK_THAT(ParseAgentConfig("listen: [\n", "a.yaml").status().message(),
             Catch::Contains("a.yaml:"));
  CHECK_THAT(ParseAgentConfig("lisen: x\n", "a.yaml").status().message(),
             Catch::Contains("a.yaml:1:1: unknown key 'lisen'"));
  CHECK_THAT(ParseAgentConfig("enroll:\n  token: short\n", "a.yaml").status().message(),
             Catch::Contains("a.yaml:2:10: enroll.token must have at least 16 characters"));
  CHECK_THAT(ParseAgentConfig("exec:\n  kill_grace: soon\n", "a.yaml").status().message(),
             Catch::Contains("a.yaml:2:15: invalid duration 'soon'"));
  CHECK_THAT(ParseAgentConfig("log:\n  format: xml\n", "a.yaml").status().message(),
             Catch::Contains("log.format"));
  CHECK(ParseAgentConfig("", "a.yaml").ok());
  // A second document was dropped unseen; a stray ',' hung yaml-cpp's LoadAll.
  CHECK_THAT(ParseAgentConfig("name: a\n---\nname: b\n", "a.yaml").status().message(),
             Catch::Contains("a.yaml:2:1: a second YAML document starts here"));
  CHECK_THAT(ParseAgentConfig("{name: a},", "a.yaml").status().message(),
             Catch::Contains("a second YAML document starts here"));
}

TEST_CASE("a key written twice in the agent config is an error, not first-wins",
          "[agent][config]") {
  using herd::agent::ParseAgentConfig;
  CHECK(
      ParseAgentConfig("listen: 127.0.0.1:1\nlisten: 127.0.0.1:2\n", "a.yaml").status().message() ==
      "a.yaml:2:1: duplicate key 'listen' (first at line 1)");
  CHECK(ParseAgentConfig("labels:\n  role: web\n  role: db\n", "a.yaml").status().message() ==
        "a.yaml:3:3: duplicate key 'role' under 'labels' (first at line 2)");
  CHECK(ParseAgentConfig("labels:\n  role: web\n  zone: eu\n", "a.yaml").ok());
}

TEST_CASE("apps.catalogs: url, key and channels, each checked and named", "[agent][config]") {
  using herd::agent::ParseAgentConfig;
  auto key = herd::app::GenerateKey();
  REQUIRE(key.ok());
  const std::string pub = herd::app::PublicKeyLine(key->pub);
  auto c = ParseAgentConfig(
      "apps:\n  catalogs:\n    - {url: \"http://127.0.0.1:8700\", key: " + pub + "}\n" +
          "    - {url: \"https://a.example/c/\", key: " + pub + ", channels: [beta, stable]}\n",
      "a.yaml");
  REQUIRE(c.ok());
  REQUIRE(c->apps.catalogs.size() == 2);
  CHECK(c->apps.catalogs[0].url == "http://127.0.0.1:8700/");
  CHECK(c->apps.catalogs[0].channels == std::vector<std::string>{"stable"});
  CHECK(c->apps.catalogs[1].channels == std::vector<std::string>{"beta", "stable"});
  CHECK(c->apps.catalogs[1].key.id == key->id);

  CHECK_THAT(ParseAgentConfig("apps:\n  catalogs:\n    - {url: \"ftp://x/\", key: " + pub + "}\n",
                              "a.yaml")
                 .status()
                 .message(),
             Catch::Contains("a.yaml:3:13: apps.catalogs url 'ftp://x/' must be an http://"));
  CHECK_THAT(ParseAgentConfig("apps:\n  catalogs:\n    - {url: \"http://x/\"}\n", "a.yaml")
                 .status()
                 .message(),
             Catch::Contains("a.yaml:3:7: an apps.catalogs entry needs url and key"));
  CHECK_THAT(
      ParseAgentConfig("apps:\n  catalogs:\n    - {url: \"http://x/\", key: nokey}\n", "a.yaml")
          .status()
          .message(),
      Catch::Contains("apps.catalogs key: 'nokey' is neither"));
  CHECK_THAT(ParseAgentConfig("apps:\n  catalogs:\n    - {url: \"http://x/\", key: " + pub +
                                  ", channels: [Beta]}\n",
                              "a.yaml")
                 .status()
                 .message(),
             Catch::Contains("apps.catalogs channel 'Beta' may hold only a-z, 0-9 and '-'"));
  CHECK_THAT(ParseAgentConfig("apps:\n  catalogs:\n    - {url: \"http://x/\", key: " + pub +
                                  ", chanels: [beta]}\n",
                              "a.yaml")
                 .status()
                 .message(),
             Catch::Contains("unknown key 'chanels' in an apps.catalogs entry"));
}

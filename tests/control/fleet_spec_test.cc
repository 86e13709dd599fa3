// The fleet spec's model (control/fleet_spec.h): parsing and its errors
// (file, line, field), the merge of entries into each host's plan, and the
// template substitution.
#include "control/fleet_spec.h"

#include <catch2/catch.hpp>

#include "tests/support/test_support.h"

using namespace herd;
using namespace herd::control;

namespace {

Inventory Fleet() {
  auto inv = ParseInventory(
      "hosts:\n"
      "  - {name: web1, address: \"127.0.0.1:1\", labels: {role: web}}\n"
      "  - {name: web2, address: \"127.0.0.1:2\", labels: {role: web}}\n"
      "  - {name: db1, address: \"127.0.0.1:3\", labels: {role: db}}\n",
      "inv.yaml");
  REQUIRE(inv.ok());
  return *inv;
}

std::string ErrorOf(const std::string& yaml) {
  auto s = ParseFleetSpec(yaml, "fleet.yaml", ".");
  REQUIRE_FALSE(s.ok());
  return s.status().message();
}

}  // namespace

TEST_CASE("the sample fleet spec parses and plans every host", "[control][fleet_spec]") {
  auto spec = LoadFleetSpec(testing::SourceDir() + "/configs/fleet.yaml");
  INFO((spec.ok() ? "" : spec.status().message()));
  REQUIRE(spec.ok());
  REQUIRE(spec->entries.size() == 3);
  auto plans = PlanHosts(*spec, Fleet());
  REQUIRE(plans.ok());
  CHECK(plans->size() == 3);
  CHECK(plans->at("web1").files.count("/etc/herd-demo/web.conf") == 1);
  CHECK(plans->at("web1").apps.at("notes").batch == "50%");
  CHECK(plans->at("db1").apps.empty());
  CHECK(plans->at("db1").commands.at(0).root);
  CHECK(plans->at("db1").labels.at("managed-by") == "herd");
}

TEST_CASE("later entries replace earlier items by key, and commands keep their first place",
          "[control][fleet_spec]") {
  auto spec = ParseFleetSpec(R"(entries:
  - hosts: all
    labels: {tier: a, keep: x}
    files: [{path: /etc/a, content: one}]
    commands:
      - {name: first, run: [true]}
      - {name: second, run: [true]}
  - hosts: web1
    labels: {tier: b}
    files: [{path: /etc/a, content: two, mode: "0600"}]
    commands:
      - {name: first, shell: "echo replaced"}
      - {name: third, run: [true]}
)",
                             "fleet.yaml", ".");
  REQUIRE(spec.ok());
  auto plans = PlanHosts(*spec, Fleet());
  REQUIRE(plans.ok());
  const HostPlan& web1 = plans->at("web1");
  CHECK(web1.labels == std::map<std::string, std::string>{{"tier", "b"}, {"keep", "x"}});
  CHECK(web1.files.at("/etc/a").content == "two");
  CHECK(web1.files.at("/etc/a").mode == "0600");
  REQUIRE(web1.commands.size() == 3);
  CHECK(web1.commands[0].name == "first");
  CHECK(web1.commands[0].shell == "echo replaced");
  CHECK(web1.commands[1].name == "second");
  CHECK(web1.commands[2].name == "third");
  CHECK(plans->at("web2").files.at("/etc/a").content == "one");
}

TEST_CASE("a bad fleet spec is refused naming file, line and field", "[control][fleet_spec]") {
  CHECK_THAT(ErrorOf("entries:\n  - hosts: all\n    filez: []\n"),
             Catch::Contains("fleet.yaml:3:5: unknown field 'filez' in an entry"));
  CHECK_THAT(ErrorOf("entries:\n  - hosts: 'web[1-'\n"), Catch::Contains("fleet.yaml:2:"));
  CHECK_THAT(ErrorOf("entries:\n  - labels: {a: b}\n"), Catch::Contains("needs hosts"));
  CHECK_THAT(ErrorOf("entries:\n  - hosts: all\n    files:\n      - {path: etc/x, content: a}\n"),
             Catch::Contains("fleet.yaml:4:16: path 'etc/x' must be an absolute, canonical path"));
  CHECK_THAT(ErrorOf("entries:\n  - hosts: all\n    files:\n      - {path: /a/../b, content: a}\n"),
             Catch::Contains("canonical"));
  CHECK_THAT(ErrorOf("entries:\n  - hosts: all\n    files:\n      - {path: /a, content: a, "
                     "source: b}\n"),
             Catch::Contains("exactly one of content and source"));
  CHECK_THAT(ErrorOf("entries:\n  - hosts: all\n    files:\n      - {path: /a, source: nosuch}\n"),
             Catch::Contains("fleet.yaml:4:28: source: cannot read ./nosuch"));
  CHECK_THAT(ErrorOf("entries:\n  - hosts: all\n    files:\n      - {path: /a, content: a, mode: "
                     "\"0999\"}\n"),
             Catch::Contains("mode '0999' must be octal"));
  CHECK_THAT(ErrorOf("entries:\n  - hosts: all\n    commands:\n      - {name: x}\n"),
             Catch::Contains("command x needs exactly one of run and shell"));
  CHECK_THAT(ErrorOf("entries:\n  - hosts: all\n    commands:\n      - {name: x, run: [a]}\n"
                     "      - {name: x, run: [b]}\n"),
             Catch::Contains("fleet.yaml:5: command name 'x' repeats"));
  CHECK_THAT(ErrorOf("entries:\n  - hosts: all\n    apps:\n      - {name: notes, version: \"1\", "
                     "batch: 0%}\n"),
             Catch::Contains("--batch"));
  CHECK_THAT(
      ErrorOf("entries:\n  - hosts: all\n    apps:\n      - {name: Notes, version: \"1\"}\n"),
      Catch::Contains("app name"));
  CHECK_THAT(ErrorOf("entries:\n  - hosts: all\n    labels: {a: b}\n    labels: {c: d}\n"),
             Catch::Contains("duplicate key 'labels'"));
  CHECK_THAT(ErrorOf("hosts: all\n"), Catch::Contains("unknown field 'hosts' in the spec"));
  // An entry naming a host the inventory lacks: its line.
  auto spec = ParseFleetSpec("entries:\n  - hosts: all\n  - hosts: nosuch\n", "fleet.yaml", ".");
  REQUIRE(spec.ok());
  CHECK_THAT(PlanHosts(*spec, Fleet()).status().message(),
             Catch::Contains("fleet.yaml:3: hosts 'nosuch'"));
}

TEST_CASE("templates substitute host, labels and facts, and name an unknown variable",
          "[control][fleet_spec]") {
  TemplateVars v{"web1", "127.0.0.1:1", {{"role", "web"}}, {{"os", "Debian"}}};
  CHECK(*RenderTemplate("{{host.name}} {{ labels.role }} on {{ facts.os }} at {{ host.address }}",
                        v, "/etc/motd") == "web1 web on Debian at 127.0.0.1:1");
  CHECK(*RenderTemplate("no braces", v, "f") == "no braces");
  CHECK_THAT(RenderTemplate("{{ labels.zone }}", v, "/etc/motd").status().message(),
             Catch::Contains("/etc/motd: unknown variable '{{ labels.zone }}'"));
  CHECK_THAT(RenderTemplate("{{ host.name", v, "f").status().message(),
             Catch::Contains("'{{' without '}}'"));
}

TEST_CASE("a selector sees the labels that earlier entries give", "[control][fleet_spec]") {
  auto spec = ParseFleetSpec(
      "entries:\n"
      "  - hosts: web1\n    labels: {canary: \"yes\"}\n"
      "  - hosts: canary=yes\n    directories: [{path: /srv/canary}]\n",
      "fleet.yaml", ".");
  REQUIRE(spec.ok());
  auto plans = PlanHosts(*spec, Fleet());
  REQUIRE(plans.ok());
  CHECK(plans->at("web1").directories.count("/srv/canary") == 1);
  CHECK(plans->count("web2") == 0);
}

// SIGKILL of herdd at every step of an app's activation, and of its
// revert, with the real CLI, agents, bwrap and the sample app: after a
// restart the app runs exactly its old or its new version, with its data.
#include <signal.h>
#include <sys/wait.h>

#include <catch2/catch.hpp>
#include <thread>

#include "tests/integration/app_test_support.h"

using namespace herd::testing;
using namespace herd::testing::apps;

TEST_CASE("SIGKILL of herdd at every step of an activation leaves the old or the new version",
          "[integration][app][activate][crash]") {
  if (!CanRunApps()) return;
  // Activating 1.1 over 1.0: before the commit the old version comes back
  // (with the data from before: 1.1 had migrated it); after it, the new stays.
  const std::vector<std::pair<std::string, int>> steps = {
      {"activate:verified", 1},  {"activate:snapshot", 1}, {"activate:stop-old", 1},
      {"activate:start-new", 1}, {"app:launched", 1},      {"activate:started", 1},
      {"activate:probe", 1},     {"activate:commit", 1},   {"activate:committed", 2}};
  for (const auto& [step, expect] : steps) {
    DYNAMIC_SECTION(step) {
      Notes notes;
      ScopedTempDir dir;
      const std::string state = dir / "state";
      {
        AgentProcess a("node1", {"--config", notes.Config(), "--state-dir", state});
        REQUIRE(a.ready());
        const std::string inv = WriteInventory(dir, {&a});
        REQUIRE(Herd(inv, {"app", "install", "all", notes.Bundle("1.0")}).exit_code == 0);
        REQUIRE(Herd(inv, {"app", "install", "all", notes.Bundle("1.1")}).exit_code == 0);
        REQUIRE(Herd(inv, {"app", "activate", "all", "notes", "1.0"}).exit_code == 0);
        notes.AddNote("survives");
      }
      {
        ::setenv("HERD_TEST_CRASH_AT", step.c_str(), 1);
        AgentProcess a("node1", {"--config", notes.Config(), "--state-dir", state});
        ::unsetenv("HERD_TEST_CRASH_AT");
        REQUIRE(a.ready());
        auto r = Herd(WriteInventory(dir, {&a}), {"app", "activate", "all", "notes", "1.1"});
        CHECK(r.exit_code != 0);
        const int status = a.Stop();
        CHECK((WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL));
      }
      AgentProcess a("node1", {"--config", notes.Config(), "--state-dir", state});
      REQUIRE(a.ready());
      const json app = Settled(WriteInventory(dir, {&a}));
      INFO(app.dump());
      INFO(a.log());
      CHECK(app["running_sequence"] == expect);
      CHECK(app["current_sequence"] == expect);
      CHECK(app["health"] == "okay");
      CHECK(app["last_activation"]["outcome"] == (expect == 2 ? "committed" : "rolled-back"));
      CHECK(HttpGet(notes.Url("/version")) == (expect == 2 ? "1.1 format 2\n" : "1.0 format 1\n"));
      CHECK(HttpGet(notes.Url("/notes")) == "survives\n");
    }
  }
}

TEST_CASE("SIGKILL of herdd at every step of a revert still ends at the old version",
          "[integration][app][activate][crash]") {
  if (!CanRunApps()) return;
  for (const std::string step : {"revert:stop-new", "revert:restore", "revert:start-old"}) {
    DYNAMIC_SECTION(step) {
      Notes notes;
      ScopedTempDir dir;
      const std::string state = dir / "state";
      {
        AgentProcess a("node1", {"--config", notes.Config(), "--state-dir", state});
        REQUIRE(a.ready());
        const std::string inv = WriteInventory(dir, {&a});
        for (const char* v : {"1.0", "1.2"}) {
          REQUIRE(Herd(inv, {"app", "install", "all", notes.Bundle(v)}).exit_code == 0);
        }
        REQUIRE(Herd(inv, {"app", "activate", "all", "notes", "1.0"}).exit_code == 0);
        notes.AddNote("survives");
      }
      {
        ::setenv("HERD_TEST_CRASH_AT", step.c_str(), 1);
        AgentProcess a("node1", {"--config", notes.Config(), "--state-dir", state});
        ::unsetenv("HERD_TEST_CRASH_AT");
        REQUIRE(a.ready());
        CHECK(
            Herd(WriteInventory(dir, {&a}), {"app", "activate", "all", "notes", "1.2"}).exit_code !=
            0);
        const int status = a.Stop();
        CHECK((WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL));
      }
      AgentProcess a("node1", {"--config", notes.Config(), "--state-dir", state});
      REQUIRE(a.ready());
      const json app = Settled(WriteInventory(dir, {&a}));
      INFO(app.dump());
      INFO(a.log());
      CHECK(app["running_sequence"] == 1);
      CHECK(app["last_activation"]["outcome"] == "rolled-back");
      CHECK(HttpGet(notes.Url("/version")) == "1.0 format 1\n");
      CHECK(HttpGet(notes.Url("/notes")) == "survives\n");
    }
  }
}

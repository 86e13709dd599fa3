// The agent's side of herd apply on real files in a temporary folder, with
// a fake command runner: each kind of item, check mode, guards, the skip
// after a failure, the owner's labels, and requests a hostile client sends.
#include "agent/apply/apply.h"

#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <filesystem>

#include "tests/support/test_support.h"

using namespace herd;
using namespace herd::agent;
using namespace herd::testing;
namespace fs = std::filesystem;

namespace {

struct Env {
  ScopedTempDir dir;
  LabelStore labels{dir.path()};
  std::map<std::string, std::string> owner{{"site", "home"}};
  Account me = AgentAccount();
  std::vector<std::string> ran;  // shell lines and argv[0]s, in order
  bool allow_root = false;
  ApplyEnv env;
  Env() {
    env.account = [this](bool root) -> Result<const Account*> {
      if (root && !allow_root) {
        return Status(StatusCode::kPermissionDenied, "this device does not allow root");
      }
      return &me;
    };
    // `test -e PATH` answers from the disk; `fail` exits 1; the rest 0.
    env.run = [this](const ExecSpec& s) {
      const std::string what = s.shell.empty() ? s.argv.at(0) : s.shell;
      ran.push_back(what);
      CommandRun r;
      if (what.rfind("test -e ", 0) == 0) {
        r.exit_code = fs::exists(what.substr(8)) ? 0 : 1;
      } else {
        r.exit_code = what == "fail" ? 1 : 0;
        r.output = what == "fail" ? "it broke" : "";
      }
      return r;
    };
    env.labels = &labels;
    env.owner_labels = &owner;
    env.facts = {{"os", "Debian"}};
  }
  v1::ApplyReply Run(const v1::ApplyRequest& req) {
    REQUIRE(CheckApplyRequest(req).ok());
    v1::ApplyReply reply;
    RunApply(req, env, &reply);
    return reply;
  }
};

std::map<std::string, std::string> Outcomes(const v1::ApplyReply& r) {
  std::map<std::string, std::string> out;
  for (const auto& i : r.items()) out[i.kind() + " " + i.key()] = i.outcome();
  return out;
}

}  // namespace

TEST_CASE("apply on the device: check changes nothing, apply changes what differs, once",
          "[agent][apply]") {
  Env e;
  const std::string d = e.dir / "d", f = e.dir / "f.conf";
  v1::ApplyRequest req;
  (*req.mutable_labels())["tier"] = "front";
  (*req.mutable_labels())["site"] = "home";  // the owner's already
  auto* dir = req.add_directories();
  dir->set_path(d);
  dir->set_mode("0700");
  auto* file = req.add_files();
  file->set_path(f);
  file->set_content("{{ host.name }} on {{ facts.os }} at {{ labels.site }}\n");
  file->set_template_(true);
  file->set_mode("0600");
  auto* once = req.add_commands();
  once->set_name("once");
  once->set_shell("touch");
  once->set_unless("test -e " + f);
  req.set_host_name("node1");
  req.set_check(true);
  req.set_diff(true);

  auto check = e.Run(req);
  CHECK(Outcomes(check) == std::map<std::string, std::string>{{"label tier", "changed"},
                                                              {"label site", "ok"},
                                                              {"directory " + d, "changed"},
                                                              {"file " + f, "changed"},
                                                              {"command once", "changed"}});
  CHECK_FALSE(fs::exists(d));
  CHECK_FALSE(fs::exists(f));
  CHECK(e.labels.Kept().empty());
  CHECK(e.ran == std::vector<std::string>{"test -e " + f});  // the guard ran, not the command

  req.set_check(false);
  auto done = e.Run(req);
  auto expect = Outcomes(check);
  expect["command once"] = "ok";  // the file it waits for was just written
  CHECK(Outcomes(done) == expect);
  CHECK(ReadFile(f) == "node1 on Debian at home\n");
  struct stat st {};
  REQUIRE(::stat(f.c_str(), &st) == 0);
  CHECK((st.st_mode & 07777) == 0600);
  REQUIRE(::stat(d.c_str(), &st) == 0);
  CHECK((st.st_mode & 07777) == 0700);
  CHECK(e.labels.Kept() == std::map<std::string, std::string>{{"tier", "front"}});
  CHECK(done.labels().at("site") == "home");
  CHECK(e.ran.back() == "test -e " + f);  // and never "touch"

  auto again = e.Run(req);
  for (const auto& i : again.items()) {
    INFO(i.key() << ": " << i.detail());
    CHECK(i.outcome() == "ok");
  }
  // A kept label survives a new store on the same state (a restart).
  CHECK(LabelStore(e.dir.path()).Kept().at("tier") == "front");
}

TEST_CASE("apply on the device: a failure skips what follows, root and owner labels refused",
          "[agent][apply]") {
  Env e;
  v1::ApplyRequest req;
  (*req.mutable_labels())["site"] = "office";  // the owner says home
  auto* boom = req.add_commands();
  boom->set_name("boom");
  boom->set_shell("fail");
  auto* after = req.add_commands();
  after->set_name("after");
  after->set_shell("true");
  auto r = e.Run(req);
  REQUIRE(r.items_size() == 3);
  CHECK(r.items(0).outcome() == "failed");
  CHECK_THAT(r.items(0).detail(), Catch::Contains("the owner's agent config sets site=home"));
  CHECK(r.items(1).outcome() == "skipped");  // after the label's failure
  CHECK(r.items(2).outcome() == "skipped");
  CHECK(e.ran.empty());

  v1::ApplyRequest root;
  auto* f = root.add_files();
  f->set_path(e.dir / "root-only");
  f->set_content("x");
  f->set_root(true);
  auto refused = e.Run(root);
  CHECK(refused.items(0).outcome() == "failed");
  CHECK_THAT(refused.items(0).detail(), Catch::Contains("refused: needs root"));
  CHECK_FALSE(fs::exists(e.dir / "root-only"));
  e.allow_root = true;
  CHECK(e.Run(root).items(0).outcome() == "changed");

  v1::ApplyRequest guarded;
  auto* c = guarded.add_commands();
  c->set_name("made");
  c->set_shell("fail");
  c->set_creates(e.dir.path());  // exists: nothing to do
  auto* o = guarded.add_commands();
  o->set_name("only");
  o->set_shell("fail");
  o->set_onlyif("test -e /nonexistent/x");
  auto g = e.Run(guarded);
  CHECK(g.items(0).outcome() == "ok");
  CHECK(g.items(1).outcome() == "ok");
  CHECK(std::count(e.ran.begin(), e.ran.end(), "fail") == 0);
}

TEST_CASE("apply requests a hostile client sends are refused whole, naming the item",
          "[agent][apply]") {
  auto error = [](const std::function<void(v1::ApplyRequest&)>& fill) {
    v1::ApplyRequest req;
    fill(req);
    return CheckApplyRequest(req).message();
  };
  CHECK_THAT(error([](auto& r) { r.add_files()->set_path("relative"); }),
             Catch::Contains("must be an absolute path"));
  CHECK_THAT(error([](auto& r) { r.add_files()->set_path("/etc/../etc/passwd"); }),
             Catch::Contains("not an absolute, canonical path"));
  CHECK_THAT(error([](auto& r) { r.add_files()->set_path(std::string("/a\0b", 4)); }),
             Catch::Contains("NUL"));
  CHECK_THAT(error([](auto& r) {
               auto* f = r.add_files();
               f->set_path("/x");
               f->set_mode("0x1");
             }),
             Catch::Contains("not octal"));
  CHECK_THAT(error([](auto& r) {
               auto* f = r.add_files();
               f->set_path("/x");
               f->set_content(std::string((1 << 20) + 1, 'a'));
             }),
             Catch::Contains("larger than 1 MiB"));
  CHECK_THAT(error([](auto& r) { (*r.mutable_labels())["bad name"] = "x"; }),
             Catch::Contains("label name"));
  CHECK_THAT(error([](auto& r) { (*r.mutable_labels())["k"] = "a\nb"; }),
             Catch::Contains("no control characters"));
  CHECK_THAT(error([](auto& r) { r.add_commands()->set_name("x"); }),
             Catch::Contains("either argv or shell"));
  CHECK_THAT(error([](auto& r) {
               for (int i = 0; i < 1001; ++i) r.add_directories()->set_path("/d");
             }),
             Catch::Contains("at most 1000"));
}

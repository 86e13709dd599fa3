// The real process launcher: a child in its own process group, on pipes,
// with the environment and working directory it was given.
#include "agent/exec/process_launcher.h"

#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include "tests/support/test_support.h"

using herd::agent::LaunchSpec;
using herd::agent::MergeEnvironment;
using herd::agent::ProcessLauncher;

namespace {

// Reads `fd` to its end (bounded: the child exits at once).
std::string ReadAll(int fd) {
  std::string out;
  char buf[4096];
  for (int i = 0; i < 10000; ++i) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

}  // namespace

TEST_CASE("a launched child has its own process group, pipes, env and cwd", "[agent][exec]") {
  herd::testing::ScopedTempDir dir;
  LaunchSpec spec;
  spec.argv = {"sh", "-c", "echo \"$HERD_T\" $(pwd); ps -o pgid= -p $$; cat; echo e >&2"};
  spec.env = MergeEnvironment({{"HERD_T", "value"}});
  spec.cwd = dir.path();
  auto child = ProcessLauncher::Real().Launch(spec);
  REQUIRE(child.ok());
  REQUIRE(::write(child->stdin_w.get(), "in\n", 3) == 3);
  child->stdin_w.Close();
  const std::string out = ReadAll(child->stdout_r.get());
  const std::string err = ReadAll(child->stderr_r.get());
  int status = 0;
  REQUIRE(::waitpid(child->pid, &status, 0) == child->pid);
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
  const auto lines = herd::testing::Lines(out);
  REQUIRE(lines.size() == 3);
  CHECK(lines[0] == "value " + dir.path());
  CHECK(std::stoi(lines[1]) == child->pid);  // leader of its own group
  CHECK(std::stoi(lines[1]) != ::getpgrp());
  CHECK(lines[2] == "in");
  CHECK(err == "e\n");
  CHECK(child->pidfd.valid());
}

TEST_CASE("a program that does not exist is named, and nothing is left running", "[agent][exec]") {
  LaunchSpec spec;
  spec.argv = {"herd-no-such-program"};
  spec.env = MergeEnvironment({});
  auto child = ProcessLauncher::Real().Launch(spec);
  REQUIRE_FALSE(child.ok());
  CHECK(child.status().code() == herd::StatusCode::kNotFound);
  CHECK(child.status().message() == "command not found: herd-no-such-program");
  LaunchSpec empty;
  CHECK_FALSE(ProcessLauncher::Real().Launch(empty).ok());
}

TEST_CASE("the environment keeps the agent's own and lets extra variables win", "[agent][exec]") {
  ::setenv("HERD_LAUNCH_TEST", "agent", 1);
  auto env = MergeEnvironment({{"HERD_LAUNCH_TEST", "mine"}, {"HERD_OTHER", "x"}});
  int found = 0;
  for (const auto& kv : env) {
    if (kv.rfind("HERD_LAUNCH_TEST=", 0) == 0) {
      ++found;
      CHECK(kv == "HERD_LAUNCH_TEST=mine");
    }
  }
  CHECK(found == 1);
  CHECK(std::find(env.begin(), env.end(), "HERD_OTHER=x") != env.end());
  CHECK(std::find(env.begin(), env.end(), "PATH=" + std::string(::getenv("PATH"))) != env.end());
  ::unsetenv("HERD_LAUNCH_TEST");
}

TEST_CASE("a child runs as the account it is given, with that account's home and groups",
          "[agent][exec]") {
  if (::geteuid() != 0) return;  // only root can switch (the CI runs as root)
  auto nobody = herd::agent::LookupAccount("nobody");
  REQUIRE(nobody.ok());
  herd::testing::ScopedTempDir dir;
  LaunchSpec spec;
  spec.argv = {"sh", "-c", "id -u; id -g; id -G; echo \"$HOME $USER $LOGNAME\"; pwd"};
  spec.env = MergeEnvironment({}, &*nobody);
  spec.account = &*nobody;
  spec.cwd = "/";
  auto child = ProcessLauncher::Real().Launch(spec);
  REQUIRE(child.ok());
  child->stdin_w.Close();
  const auto lines = herd::testing::Lines(ReadAll(child->stdout_r.get()));
  int status = 0;
  REQUIRE(::waitpid(child->pid, &status, 0) == child->pid);
  REQUIRE(lines.size() == 5);
  CHECK(lines[0] == std::to_string(nobody->uid));
  CHECK(lines[1] == std::to_string(nobody->gid));
  CHECK(lines[2].find(" 0") == std::string::npos);  // root's group is gone
  CHECK(lines[2] != "0");
  CHECK(lines[3] == nobody->home + " nobody nobody");
  // A working directory the account may not enter is refused as it would be.
  spec.cwd = dir.path();  // 0700, root's
  auto refused = ProcessLauncher::Real().Launch(spec);
  REQUIRE_FALSE(refused.ok());
  CHECK_THAT(refused.status().message(),
             Catch::Contains("working directory " + dir.path() + ": Permission denied"));
}

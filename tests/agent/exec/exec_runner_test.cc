#include "agent/exec/exec_runner.h"

#include <signal.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <future>

#include "tests/support/test_support.h"

using namespace herd::agent;
using namespace std::chrono_literals;

namespace {

struct Run {
  std::string out, err;
  ExecOutcome outcome;
};

Run Exec(ExecRunner& runner, ExecSpec spec) {
  auto done = std::make_shared<std::promise<ExecOutcome>>();
  auto fut = done->get_future();
  auto out = std::make_shared<std::string>(), err = std::make_shared<std::string>();
  auto id = runner.Start(
      std::move(spec),
      [out, err](bool is_err, std::string d) {
        (is_err ? *err : *out) += d;
        return true;
      },
      [done](ExecOutcome o) { done->set_value(std::move(o)); });
  REQUIRE(id.ok());
  REQUIRE(fut.wait_for(60s) == std::future_status::ready);
  return {*out, *err, fut.get()};
}

}  // namespace

TEST_CASE("exec runs argv directly and reports exit code and output", "[agent][exec]") {
  ExecRunner runner(4);
  ExecSpec s;
  s.argv = {"sh", "-c", "echo out; echo err >&2; exit 7"};
  auto r = Exec(runner, s);
  CHECK(r.out == "out\n");
  CHECK(r.err == "err\n");
  CHECK(r.outcome.exit_code == 7);
  CHECK(r.outcome.error.empty());
  s.argv = {"echo", "$HOME", "a b"};  // no shell: no expansion
  CHECK(Exec(runner, s).out == "$HOME a b\n");
}

TEST_CASE("exec passes environment, working directory and stdin", "[agent][exec]") {
  herd::testing::ScopedTempDir dir;
  ExecRunner runner(4);
  ExecSpec s;
  s.shell = "echo \"$GREETING\"; pwd; cat";
  s.env = {{"GREETING", "hello"}};
  s.cwd = dir.path();
  s.stdin_data = "from stdin";
  auto r = Exec(runner, s);
  CHECK(r.out == "hello\n" + dir.path() + "\nfrom stdin");
}

TEST_CASE("exec reports a missing binary or directory as a clear error", "[agent][exec]") {
  ExecRunner runner(4);
  ExecSpec s;
  s.argv = {"herd-no-such-binary"};
  auto r = Exec(runner, s);
  CHECK(r.outcome.error == "command not found: herd-no-such-binary");
  CHECK(r.outcome.exit_code == -1);  // never started: no exit status, the error says why
  s.argv = {"true"};
  s.cwd = "/nonexistent/dir";
  CHECK_THAT(Exec(runner, s).outcome.error, Catch::Contains("/nonexistent/dir"));
}

TEST_CASE("exec times out with TERM, then KILL for a command that ignores TERM", "[agent][exec]") {
  herd::testing::ScopedTempDir dir;
  ExecRunner runner(4);
  ExecSpec s;
  // The background sleep shares the process group and must die with it.
  s.shell = "trap '' TERM; sleep 300 & echo $! > " + dir.path() + "/bg; wait";
  s.timeout = 300ms;
  s.kill_grace = 300ms;
  auto r = Exec(runner, s);
  CHECK(r.outcome.timed_out);
  CHECK(r.outcome.signal == SIGKILL);
  pid_t bg = std::stoi(herd::testing::ReadFile(dir.path() + "/bg"));
  CHECK(herd::testing::WaitFor([&] { return ::kill(bg, 0) != 0; }, 10s));
}

TEST_CASE("exec caps output and drains the rest", "[agent][exec]") {
  ExecRunner runner(4);
  ExecSpec s;
  s.argv = {"head", "-c", "20000000", "/dev/zero"};
  s.max_output_bytes = 1000;
  auto r = Exec(runner, s);
  CHECK(r.out.size() == 1000);
  CHECK(r.outcome.truncated);
  CHECK(r.outcome.exit_code == 0);
}

TEST_CASE("exec refuses more than max_concurrent and kills all on shutdown", "[agent][exec]") {
  ExecRunner runner(1);
  auto done = std::make_shared<std::promise<ExecOutcome>>();
  auto fut = done->get_future();
  ExecSpec s;
  s.argv = {"sleep", "300"};
  auto id = runner.Start(
      s, [](bool, std::string) { return true; },
      [done](ExecOutcome o) { done->set_value(std::move(o)); });
  REQUIRE(id.ok());
  auto second = runner.Start(
      s, [](bool, std::string) { return true; }, [](ExecOutcome) {});
  CHECK_FALSE(second.ok());
  runner.KillAll();
  REQUIRE(fut.wait_for(10s) == std::future_status::ready);
  CHECK(fut.get().signal == SIGTERM);
  CHECK(runner.running() == 0);
}

TEST_CASE("output is flow-controlled: a receiver that holds enough stops the reading",
          "[agent][exec]") {
  ExecRunner runner(2);
  ExecSpec s;
  s.argv = {"head", "-c", "5000000", "/dev/zero"};
  auto received = std::make_shared<std::atomic<size_t>>(0);
  auto calls = std::make_shared<std::atomic<int>>(0);
  auto done = std::make_shared<std::promise<ExecOutcome>>();
  auto fut = done->get_future();
  s.max_output_bytes = 8 << 20;
  auto id = runner.Start(
      s,
      [received, calls](bool, std::string d) {
        *received += d.size();
        return ++*calls > 1;  // "full" after the first chunk, until resumed
      },
      [done](ExecOutcome o) { done->set_value(std::move(o)); });
  REQUIRE(id.ok());
  // The command ends up blocked on its full pipe, and what reached the
  // receiver is one read, not the 5 MB.
  REQUIRE(herd::testing::WaitFor(
      [&] {
        for (const auto& e : std::filesystem::directory_iterator("/proc")) {
          const std::string cmd = herd::testing::ReadFile(e.path().string() + "/cmdline");
          if (cmd.rfind(std::string("head\0-c\0"
                                    "5000000",
                                    16),
                        0) == 0) {
            const std::string wchan = herd::testing::ReadFile(e.path().string() + "/wchan");
            if (wchan.find("pipe") != std::string::npos) return true;
          }
        }
        return false;
      },
      10s));
  CHECK(*received <= 64 * 1024);
  CHECK(*calls == 1);
  runner.Resume(*id);
  REQUIRE(fut.wait_for(30s) == std::future_status::ready);
  auto o = fut.get();
  CHECK(o.exit_code == 0);
  CHECK(*received == 5000000);
}

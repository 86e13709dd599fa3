// The fan-out engine alone: LocalExecutor with fake agents on a fake clock,
// through RunTask and a recording reporter. No process, socket or sleep.
#include "control/fanout.h"

#include <catch2/catch.hpp>

#include "control/task.h"
#include "control/tasks.h"
#include "herd/v1/agent.pb.h"
#include "tests/support/fakes.h"

using namespace herd::control;
using herd::Status;
using herd::StatusCode;
using herd::testing::FakeAgents;
using herd::testing::FakeClock;
using herd::testing::FakeHost;
using herd::testing::RecordingReporter;
using namespace std::chrono_literals;

namespace {

struct Fleet {
  explicit Fleet(size_t n) {
    for (size_t i = 1; i <= n; ++i) {
      hosts.push_back({"h" + std::to_string(i), "a" + std::to_string(i), {}, ""});
    }
    for (const auto& h : hosts) pointers.push_back(&h);
  }
  std::vector<Host> hosts;
  std::vector<const Host*> pointers;
};

struct Engine {
  FakeClock clock;
  FakeAgents agents{clock};
  RecordingReporter reporter{clock};
  ExecutorOptions opts;
  Engine() { opts.clock = &clock; }

  std::vector<HostResult> Run(const Fleet& fleet, const Task& task) {
    LocalExecutor executor(agents, opts);
    return RunTask(executor, fleet.pointers, task, reporter);
  }
};

std::string Event(const char* out, bool result = false) {
  herd::v1::ExecEvent ev;
  if (result) {
    ev.mutable_result()->set_exit_code(0);
  } else {
    ev.set_out(out);
  }
  return ev.SerializeAsString();
}

// A host that answers after `latency`.
FakeHost After(std::chrono::milliseconds latency, std::vector<std::string> messages = {""},
               Status status = Status::Ok()) {
  FakeHost h;
  h.latency = latency;
  h.messages = std::move(messages);
  h.status = std::move(status);
  return h;
}

// A host that never answers (a black hole).
FakeHost Hang() {
  FakeHost h;
  h.hang = true;
  return h;
}

// Each host appears exactly once among the reporter's results.
void RequireOneResultEach(const Fleet& fleet, const RecordingReporter& reporter) {
  std::map<std::string, int> seen;
  for (const auto& r : reporter.results) ++seen[r.host];
  REQUIRE(seen.size() == fleet.hosts.size());
  for (const auto& [host, count] : seen) CHECK(count == 1);
  CHECK(reporter.finished == 1);
}

}  // namespace

TEST_CASE("fan-out never has more calls in flight than --forks", "[control][fanout]") {
  Engine e;
  e.opts.forks = 3;
  Fleet fleet(20);
  for (const auto& h : fleet.hosts) e.agents.Script(h.address, After(10ms));
  auto results = e.Run(fleet, PingTask(5s));
  REQUIRE(results.size() == 20);
  for (const auto& r : results) CHECK(r.outcome == Outcome::kOk);
  CHECK(e.agents.stats().max_in_flight == 3);
  CHECK(e.agents.stats().started == 20);
  // Seven rounds of three (the last of two), 10 ms each.
  CHECK(e.clock.ElapsedMs() >= 70);
  CHECK(e.clock.ElapsedMs() < 100);
  RequireOneResultEach(fleet, e.reporter);
}

TEST_CASE("fan-out returns results in host order, reports them as they come", "[control][fanout]") {
  Engine e;
  Fleet fleet(5);
  for (size_t i = 0; i < 5; ++i) {
    e.agents.Script(fleet.hosts[i].address, After(std::chrono::milliseconds(50 - 10 * i)));
  }
  auto results = e.Run(fleet, PingTask(5s));
  for (size_t i = 0; i < 5; ++i) CHECK(results[i].host == fleet.hosts[i].name);
  REQUIRE(e.reporter.results.size() == 5);
  CHECK(e.reporter.results.front().host == "h5");  // the quickest
  CHECK(e.reporter.results.back().host == "h1");
}

TEST_CASE("a host that never answers ends at its deadline and holds up no other",
          "[control][fanout]") {
  Engine e;
  e.opts.forks = 2;
  Fleet fleet(10);
  for (const auto& h : fleet.hosts) e.agents.Script(h.address, After(20ms));
  e.agents.Script("a1", Hang());  // a black hole
  auto results = e.Run(fleet, PingTask(5s));
  CHECK(results[0].outcome == Outcome::kUnreachable);
  CHECK(results[0].message == "no answer before the deadline (--timeout)");
  CHECK(results[0].error_code == "deadline_exceeded");
  for (size_t i = 1; i < 10; ++i) CHECK(results[i].outcome == Outcome::kOk);
  // The other nine went through the second slot, one after another, long
  // before the black hole's deadline.
  for (const auto& ev : e.reporter.events) {
    if (ev.kind == "result" && ev.host != "h1") CHECK(ev.at_ms < 1000);
    if (ev.kind == "result" && ev.host == "h1") CHECK(ev.at_ms >= 5000);
  }
  // Its call was cancelled, and the transport let go of it.
  CHECK(e.agents.stats().cancel_requests == 1);
  CHECK(e.agents.stats().cancelled == 1);
  CHECK(e.agents.stats().in_flight == 0);
  RequireOneResultEach(fleet, e.reporter);
}

TEST_CASE("a late answer after the engine's deadline does not make a second result",
          "[control][fanout]") {
  Engine e;
  e.opts.deadline_grace = 1s;
  Fleet fleet(3);
  // Answers 10 s after a 2 s deadline: the transport never reported in time.
  e.agents.Script("a2", After(12s));
  auto results = e.Run(fleet, PingTask(2s));
  CHECK(results[1].outcome == Outcome::kUnreachable);
  CHECK(results[0].outcome == Outcome::kOk);
  RequireOneResultEach(fleet, e.reporter);
}

TEST_CASE("a call ended at its deadline keeps its fork until the transport lets go of it",
          "[control][fanout]") {
  Engine e;
  e.opts.forks = 1;
  e.opts.deadline_grace = 1s;
  Fleet fleet(2);
  // The engine ends h1 at 3 s (2 s deadline + grace); its transport, deaf to
  // the cancellation, lets go at 3.5 s. h2 may only start then.
  FakeHost slow = After(3500ms);
  slow.ignore_cancel = true;
  e.agents.Script("a1", slow);
  e.agents.Script("a2", After(10ms));
  auto results = e.Run(fleet, PingTask(2s));
  CHECK(results[0].outcome == Outcome::kUnreachable);
  CHECK(results[1].outcome == Outcome::kOk);
  CHECK(e.agents.stats().max_in_flight == 1);
  for (const auto& ev : e.reporter.events) {
    if (ev.kind == "result" && ev.host == "h1") CHECK(ev.at_ms == 3000);
    if (ev.kind == "result" && ev.host == "h2") CHECK(ev.at_ms >= 3510);
  }
  RequireOneResultEach(fleet, e.reporter);
}

TEST_CASE("Ctrl-C cancels calls in flight and starts no more", "[control][fanout]") {
  Engine e;
  std::atomic<bool> interrupted{false};
  e.opts.interrupted = &interrupted;
  e.opts.forks = 2;
  Fleet fleet(6);
  for (const auto& h : fleet.hosts) e.agents.Script(h.address, After(100ms));
  e.clock.At(e.clock.Now() + 150ms, [&] { interrupted = true; });
  auto results = e.Run(fleet, PingTask(5s));
  // h1, h2 answered at 100 ms; h3, h4 were running at 150 ms; h5, h6 never began.
  CHECK(results[0].outcome == Outcome::kOk);
  CHECK(results[1].outcome == Outcome::kOk);
  for (size_t i : {2, 3}) {
    CHECK(results[i].outcome == Outcome::kCancelled);
    CHECK(results[i].message == "interrupted: the call was cancelled");
  }
  for (size_t i : {4, 5}) {
    CHECK(results[i].outcome == Outcome::kCancelled);
    CHECK(results[i].message == "not started: interrupted");
    CHECK(results[i].attempts == 0);
  }
  CHECK(e.agents.stats().started == 4);
  CHECK(e.agents.stats().cancelled == 2);
  CHECK(ComputeExitCode(results) == ExitCode::kInterrupted);
  RequireOneResultEach(fleet, e.reporter);
}

TEST_CASE("a host's output reaches the reporter in order, before its result", "[control][fanout]") {
  Engine e;
  Fleet fleet(2);
  e.agents.Script("a1", After(5ms, {Event("one\n"), Event("two\n"), Event("", true)}));
  e.agents.Script("a2", After(5ms, {Event("x\n")}, Status(StatusCode::kUnavailable, "reset")));
  CommandSpec spec;
  spec.argv = {"true"};
  auto task = ExecTask(spec);
  REQUIRE(task.ok());
  auto results = e.Run(fleet, *task);
  std::vector<std::string> h1;
  for (const auto& ev : e.reporter.events) {
    if (ev.host == "h1") h1.push_back(ev.kind + ":" + ev.data);
  }
  CHECK(h1 == std::vector<std::string>{"output:one\n", "output:two\n", "result:ok"});
  // The reporter got the collected output with the result; once printed it
  // is released (this reporter does not keep outputs for its finish).
  REQUIRE(e.reporter.results.size() == 2);
  for (const auto& r : e.reporter.results) {
    if (r.host == "h1") CHECK(r.stdout_data == "one\ntwo\n");
  }
  CHECK(results[0].stdout_data.empty());
  // Output, then a broken connection: the host was reached and failed.
  CHECK(results[1].outcome == Outcome::kCommandFailed);
  CHECK(results[1].exit_code == -1);
}

TEST_CASE("hosts with a request of their own get it, the others the common one",
          "[control][fanout]") {
  Engine e;
  Fleet fleet(3);
  Task task = PingTask(1s);
  task.op.request_for["h2"] = std::make_shared<const std::string>("own");
  e.Run(fleet, task);
  const auto stats = e.agents.stats();
  CHECK(stats.requests.at("a2") == "own");
  CHECK(stats.requests.at("a1") == *task.op.call.request);
}

TEST_CASE("progress counts hosts done and in flight", "[control][fanout]") {
  Engine e;
  e.opts.forks = 1;
  e.opts.progress_every = 100ms;
  Fleet fleet(4);
  for (const auto& h : fleet.hosts) e.agents.Script(h.address, After(250ms));
  e.Run(fleet, PingTask(5s));
  REQUIRE_FALSE(e.reporter.progress.empty());
  for (const auto& p : e.reporter.progress) {
    CHECK(p.total == 4);
    CHECK(p.in_flight <= 1);
    CHECK(p.done <= 4);
  }
  CHECK(e.reporter.progress.back().done >= 3);
}

TEST_CASE("a host whose output the engine has not taken is told to stop reading",
          "[control][fanout]") {
  Engine e;
  Fleet fleet(2);
  // 2 MiB in 64 KiB messages arrive at once: past 256 KiB not yet taken,
  // the transport hears "enough".
  std::vector<std::string> flood;
  const std::string chunk(64 << 10, 'x');
  for (int i = 0; i < 32; ++i) flood.push_back(Event(chunk.c_str()));
  flood.push_back(Event("", true));
  e.agents.Script("a1", After(5ms, flood));
  e.agents.Script("a2", After(5ms, {Event("small\n"), Event("", true)}));
  CommandSpec spec;
  spec.argv = {"true"};
  spec.max_output = 4 << 20;
  auto task = ExecTask(spec);
  REQUIRE(task.ok());
  auto results = e.Run(fleet, *task);
  CHECK(results[0].outcome == Outcome::kOk);
  CHECK(results[1].outcome == Outcome::kOk);
  const auto stats = e.agents.stats();
  CHECK(stats.paused >= 1);
  CHECK(stats.paused <= 30);  // not for the first messages: only past the budget
  size_t bytes = 0;
  for (const auto& ev : e.reporter.events) {
    if (ev.host == "h1" && ev.kind == "output") bytes += ev.data.size();
  }
  CHECK(bytes == 32u * chunk.size());  // nothing lost
}

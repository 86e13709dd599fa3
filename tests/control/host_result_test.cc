#include "control/host_result.h"

#include <catch2/catch.hpp>

#include "control/output.h"
#include "control/targets.h"
#include "control/task.h"
#include "control/tasks.h"

using namespace herd::control;

namespace {
std::vector<HostResult> With(std::initializer_list<Outcome> outcomes) {
  std::vector<HostResult> out;
  for (auto o : outcomes) {
    HostResult r;
    r.outcome = o;
    out.push_back(r);
  }
  return out;
}
}  // namespace

TEST_CASE("exit codes follow the contract", "[control][exit]") {
  CHECK(ComputeExitCode(With({Outcome::kOk, Outcome::kOk})) == ExitCode::kOk);
  CHECK(ComputeExitCode(With({})) == ExitCode::kOk);
  CHECK(ComputeExitCode(With({Outcome::kOk, Outcome::kCommandFailed})) == ExitCode::kHostFailed);
  CHECK(ComputeExitCode(With({Outcome::kTimeout})) == ExitCode::kHostFailed);
  CHECK(ComputeExitCode(With({Outcome::kRejected})) == ExitCode::kHostFailed);
  CHECK(ComputeExitCode(With({Outcome::kUnreachable, Outcome::kOk})) == ExitCode::kHostUnreachable);
  CHECK(ComputeExitCode(With({Outcome::kUnreachable, Outcome::kCommandFailed})) ==
        ExitCode::kFailedAndUnreachable);
  CHECK(ComputeExitCode(With({Outcome::kCancelled, Outcome::kOk})) == ExitCode::kInterrupted);
  CHECK(static_cast<int>(ExitCode::kFailedAndUnreachable) == 6);
}

TEST_CASE("how a call ended decides its outcome by code and answer, never by text",
          "[control][exit]") {
  using herd::Status;
  using herd::StatusCode;
  auto end = [](StatusCode code, const char* msg, size_t messages) {
    CallEnd e;
    e.status = Status(code, msg);
    e.messages = messages;
    return e;
  };
  CHECK(OutcomeFor(end(StatusCode::kOk, "", 1)) == Outcome::kOk);
  CHECK(OutcomeFor(end(StatusCode::kUnavailable, "refused", 0)) == Outcome::kUnreachable);
  CHECK(OutcomeFor(end(StatusCode::kDeadlineExceeded, "x", 0)) == Outcome::kUnreachable);
  // Output came, then the deadline: the command ran out of time.
  CHECK(OutcomeFor(end(StatusCode::kDeadlineExceeded, "x", 3)) == Outcome::kTimeout);
  // Output came, then the connection broke: the host failed, it was reached.
  CHECK(OutcomeFor(end(StatusCode::kUnavailable, "reset", 2)) == Outcome::kCommandFailed);
  CHECK(OutcomeFor(end(StatusCode::kPermissionDenied, "no", 0)) == Outcome::kRejected);
  // A message that merely reads like an answer changes nothing.
  CHECK(OutcomeFor(end(StatusCode::kDeadlineExceeded, "answered: x", 0)) == Outcome::kUnreachable);
  auto r = ErrorResult(end(StatusCode::kDeadlineExceeded, "Deadline Exceeded", 0));
  CHECK(r.message == "no answer before the deadline (--timeout)");
  CHECK(r.error_code == "deadline_exceeded");
  r = ErrorResult(end(StatusCode::kDeadlineExceeded, "Deadline Exceeded", 1));
  CHECK(r.outcome == Outcome::kTimeout);
  CHECK(r.message == "Deadline Exceeded");
}

TEST_CASE("agent timeout leaves the CLI a margin", "[control][exit]") {
  using std::chrono::milliseconds;
  CHECK(AgentTimeoutMs(milliseconds(60'000)) == 59'000);
  CHECK(AgentTimeoutMs(milliseconds(2'000)) == 1'900);
  CHECK(AgentTimeoutMs(milliseconds(1)) >= 1);
}

TEST_CASE("JSON result objects keep stable field names", "[control][output]") {
  HostResult r;
  r.host = "node01";
  r.address = "127.0.0.1:1";
  r.outcome = Outcome::kCommandFailed;
  r.command = true;
  r.exit_code = 3;
  auto j = HostResultJson(r);
  CHECK(j["host"] == "node01");
  CHECK(j["outcome"] == "failed");
  CHECK(j["ok"] == false);
  CHECK(j["exit_code"] == 3);
  CHECK(SummaryLine(With({Outcome::kOk, Outcome::kUnreachable}), std::chrono::milliseconds(1500)) ==
        "2 hosts: 1 ok, 0 failed, 1 unreachable in 1.50 s");
}

TEST_CASE("file_sd targets carry sanitised labels", "[control][targets]") {
  Host h{"node01", "127.0.0.1:1", {{"role", "web"}, {"app.kubernetes/x", "y"}}, "127.0.0.1:2"};
  auto j = FileSdTargets({&h});
  REQUIRE(j.size() == 1);
  CHECK(j[0]["targets"][0] == "127.0.0.1:2");
  CHECK(j[0]["labels"]["herd_host"] == "node01");
  CHECK(j[0]["labels"]["role"] == "web");
  CHECK(j[0]["labels"]["app_kubernetes_x"] == "y");
}

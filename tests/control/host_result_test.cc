#include "control/host_result.h"

#include <catch2/catch.hpp>

#include "common/duration.h"
#include "control/output.h"
#include "control/targets.h"
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

TEST_CASE("transport errors map to outcomes in one place", "[control][exit]") {
  using herd::Status;
  using herd::StatusCode;
  CHECK(OutcomeForError(Status(StatusCode::kUnavailable, "refused")) == Outcome::kUnreachable);
  CHECK(OutcomeForError(Status(StatusCode::kDeadlineExceeded, "x")) == Outcome::kUnreachable);
  CHECK(OutcomeForError(Status(StatusCode::kDeadlineExceeded, "answered: x")) == Outcome::kTimeout);
  CHECK(OutcomeForError(Status(StatusCode::kPermissionDenied, "no")) == Outcome::kRejected);
}

TEST_CASE("agent timeout leaves the CLI a margin", "[control][exit]") {
  using std::chrono::milliseconds;
  CHECK(AgentTimeoutMs(milliseconds(60'000)) == 59'000);
  CHECK(AgentTimeoutMs(milliseconds(2'000)) == 1'900);
  CHECK(AgentTimeoutMs(milliseconds(1)) >= 1);
}

TEST_CASE("durations parse with units", "[common]") {
  CHECK(herd::ParseDuration("500ms")->count() == 500);
  CHECK(herd::ParseDuration("30s")->count() == 30'000);
  CHECK(herd::ParseDuration("2m")->count() == 120'000);
  CHECK(herd::ParseDuration("1.5")->count() == 1'500);
  CHECK_FALSE(herd::ParseDuration("10 parsecs").ok());
  CHECK_FALSE(herd::ParseDuration("").ok());
}

TEST_CASE("durations format with two units at most", "[common]") {
  using std::chrono::milliseconds;
  CHECK(herd::FormatDuration(milliseconds(0)) == "0s");
  CHECK(herd::FormatDuration(milliseconds(500)) == "500ms");
  CHECK(herd::FormatDuration(milliseconds(45'000)) == "45s");
  CHECK(herd::FormatDuration(milliseconds(600'000)) == "10m0s");
  CHECK(herd::FormatDuration(milliseconds(3'600'000 + 5 * 60'000 + 7'000)) == "1h5m");
  CHECK(herd::FormatDuration(milliseconds(2 * 86'400'000LL + 4 * 3'600'000)) == "2d4h");
}

TEST_CASE("JSON result objects keep stable field names", "[control][output]") {
  HostResult r;
  r.host = "node01";
  r.address = "127.0.0.1:1";
  r.outcome = Outcome::kCommandFailed;
  r.command = true;
  r.exit_code = 3;
  r.stdout_data = "out\xff";  // invalid UTF-8 must not throw
  auto j = HostResultJson(r);
  CHECK(j["host"] == "node01");
  CHECK(j["outcome"] == "failed");
  CHECK(j["ok"] == false);
  CHECK(j["exit_code"] == 3);
  CHECK(j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).find("out") !=
        std::string::npos);
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

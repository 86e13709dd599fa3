#include "control/host_result.h"

namespace herd::control {

const char* OutcomeName(Outcome o) {
  switch (o) {
    case Outcome::kOk:
      return "ok";
    case Outcome::kCommandFailed:
      return "failed";
    case Outcome::kRejected:
      return "rejected";
    case Outcome::kUnreachable:
      return "unreachable";
    case Outcome::kTimeout:
      return "timeout";
    case Outcome::kCancelled:
      return "cancelled";
    case Outcome::kSkipped:
      return "skipped";
  }
  return "unknown";
}

bool IsFailure(Outcome o) {
  return o == Outcome::kCommandFailed || o == Outcome::kRejected || o == Outcome::kTimeout;
}

bool IsUnreachable(Outcome o) { return o == Outcome::kUnreachable; }

void Tally::Add(Outcome o) {
  if (o == Outcome::kOk) {
    ++ok;
  } else if (IsFailure(o)) {
    ++failed;
  } else if (IsUnreachable(o)) {
    ++unreachable;
  } else {
    ++cancelled;
  }
}

Tally Count(const std::vector<HostResult>& results) {
  Tally t;
  for (const auto& r : results) t.Add(r.outcome);
  return t;
}

ExitCode ComputeExitCode(const std::vector<HostResult>& results) {
  Tally t = Count(results);
  if (t.cancelled > 0) return ExitCode::kInterrupted;
  if (t.failed > 0 && t.unreachable > 0) return ExitCode::kFailedAndUnreachable;
  if (t.failed > 0) return ExitCode::kHostFailed;
  if (t.unreachable > 0) return ExitCode::kHostUnreachable;
  return ExitCode::kOk;
}

}  // namespace herd::control

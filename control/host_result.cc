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

Tally Count(const std::vector<HostResult>& results) {
  Tally t;
  for (const auto& r : results) {
    if (r.outcome == Outcome::kOk)
      ++t.ok;
    else if (IsFailure(r.outcome))
      ++t.failed;
    else if (IsUnreachable(r.outcome))
      ++t.unreachable;
    else
      ++t.cancelled;
  }
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

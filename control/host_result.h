// One host's result from a fan-out, and the mapping of a whole run to an exit
// code. Plain values; safe to copy between threads.
#pragma once

#include <chrono>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace herd::control {

enum class Outcome {
  kOk,             // the host answered and the operation succeeded
  kCommandFailed,  // the host ran it and it failed (non-zero exit, signal, bad file)
  kRejected,       // the agent refused the request (invalid, permission, not found)
  kUnreachable,    // no answer: refused, reset, or nothing within the deadline
  kTimeout,        // the host answered but the command ran out of time
  kCancelled,      // interrupted by the operator (Ctrl-C)
  kSkipped,        // never attempted
};

const char* OutcomeName(Outcome o);
// Failed = answered with a failure; unreachable = no answer. Used by exit codes.
bool IsFailure(Outcome o);
bool IsUnreachable(Outcome o);

struct HostResult {
  std::string host;
  std::string address;
  Outcome outcome = Outcome::kSkipped;
  std::string error_code;  // StatusCodeName of the error, empty on success
  std::string message;     // error text, empty on success
  bool command = false;    // true for exec: exit_code/signal/output are meaningful
  int exit_code = 0;       // commands only
  int signal = 0;
  bool output_truncated = false;
  std::string stdout_data;  // collected output (bounded by the collector's cap)
  std::string stderr_data;
  std::chrono::milliseconds duration{0};
  int attempts = 0;
  std::string summary;  // one-line text for people ("pong 0.4 ms")
  // The version of the revocation list the agent holds, as its reply said;
  // -1 when it did not say.
  int64_t revocation_version = -1;
  nlohmann::json data;  // structured payload for -o json (facts, health, ...)
};

// Every exit code herd has: a contract with scripts and CI, listed in the
// README's table.
enum class ExitCode : int {
  kOk = 0,                    // every host ok (mux status: running)
  kHerdError = 1,             // herd's own error: flags, inventory, selector, local files
  kHostFailed = 2,            // some host failed (non-zero exit, timeout, refused request)
  kNotRunning = 3,            // mux status: no mux is running
  kHostUnreachable = 4,       // some host unreachable
  kChangesPending = 5,        // apply --check, drift: every host answered, and some differ
  kFailedAndUnreachable = 6,  // both 2 and 4
  kInterrupted = 130,         // Ctrl-C
};

ExitCode ComputeExitCode(const std::vector<HostResult>& results);

struct Tally {
  size_t ok = 0, failed = 0, unreachable = 0, cancelled = 0;  // cancelled includes skipped
  void Add(Outcome o);
};
Tally Count(const std::vector<HostResult>& results);

}  // namespace herd::control

// Reporter: where fan-out results go. Implementations print for people (live
// text, folded) or machines (JSON Lines): control/output.h. Every method runs
// on the thread that runs the operation; reporters own no threads.
#pragma once

#include <chrono>
#include <string_view>
#include <vector>

#include "control/host_result.h"
#include "control/inventory.h"

namespace herd::control {

struct Progress {
  size_t total = 0, done = 0, in_flight = 0;
  Tally tally;  // of the hosts done
  std::chrono::milliseconds elapsed{0};
};

class Reporter {
 public:
  virtual ~Reporter() = default;
  virtual void OnStart(size_t /*total*/) {}
  virtual void OnOutput(const Host& /*host*/, bool /*is_stderr*/, std::string_view /*data*/) {}
  virtual void OnResult(const HostResult& result) = 0;
  virtual void OnProgress(const Progress& /*p*/) {}
  virtual void OnFinish(const std::vector<HostResult>& results,
                        std::chrono::milliseconds elapsed) = 0;
  // Whether OnFinish reads the hosts' collected output (--fold does); when
  // not, each host's output is released once OnResult has it.
  virtual bool KeepsOutput() const { return false; }
};

// Reports nothing: for tasks run as steps of a larger operation that tells
// its own story (a rollout's waves, the revocation catch-up).
class NullReporter final : public Reporter {
 public:
  void OnResult(const HostResult&) override {}
  void OnFinish(const std::vector<HostResult>&, std::chrono::milliseconds) override {}
};

}  // namespace herd::control

// RateLimiter: lets at most `limit` events through per `window` and counts
// the ones it holds back, so that the next event let through can say how
// many were left out ("(12 earlier ... not recorded)"). Used for the audit
// log's refusals of unknown callers and for error log lines that a fault
// could repeat thousands of times a second. Thread-safe.
#pragma once

#include <chrono>
#include <mutex>

#include "common/clock.h"

namespace herd {

class RateLimiter {
 public:
  RateLimiter(int limit, std::chrono::milliseconds window, const Clock& clock = Clock::Real());

  // True when this event may go through. Then `*suppressed` (if given)
  // receives how many events were held back since the last one that went
  // through, and that count starts again from zero.
  bool Allow(int* suppressed = nullptr);

 private:
  const int limit_;
  const std::chrono::milliseconds window_;
  const Clock& clock_;
  std::mutex mu_;  // guards everything below
  Clock::time_point window_start_{};
  bool started_ = false;
  int in_window_ = 0, suppressed_ = 0;
};

}  // namespace herd

// RestartPolicy: when the supervisor starts an app again after it ended
// (docs/apps.md). Pure logic over time points the caller passes in (its
// Clock), so tests drive it without sleeping. One instance per app; not
// thread-safe (the supervisor owns it).
//
//   restart: on-failure   again after a failure (exit != 0 or a signal)
//            always       again after any end
//            never        not again
//   backoff  1 s, doubling to 5 min; back to 1 s once a run lasted 10 min
//   crash loop           5 failures in a row, each run shorter than the
//                        reset time: a state the supervisor reports; the
//                        app is still started again (at the longest delay),
//                        never silently given up
#pragma once

#include <chrono>
#include <optional>
#include <string>

#include "common/clock.h"
#include "common/status.h"

namespace herd::agent {

class RestartPolicy {
 public:
  using ms = std::chrono::milliseconds;
  struct Settings {
    std::string mode = "on-failure";  // on-failure | always | never
    ms first_delay{1'000};
    ms max_delay{300'000};
    ms reset_after{600'000};  // a run this long resets the backoff
    int crash_loop_failures = 5;
  };

  // kInvalidArgument for a mode other than the three, or delays that do
  // not grow (first <= max, both positive).
  static Result<RestartPolicy> Make(Settings s);

  // The app was started at `now`.
  void Started(Clock::time_point now);
  // The app ended at `now`, `failed` or not. When to start it again, or
  // nothing: not at all.
  std::optional<Clock::time_point> Ended(Clock::time_point now, bool failed);

  bool crash_looping() const { return failures_in_a_row_ >= s_.crash_loop_failures; }
  int restarts() const { return restarts_; }  // starts after the first
  int failures_in_a_row() const { return failures_in_a_row_; }
  ms next_delay() const { return delay_; }  // the one Ended would wait next

 private:
  explicit RestartPolicy(Settings s) : s_(std::move(s)), delay_(s_.first_delay) {}
  Settings s_;
  ms delay_;
  Clock::time_point started_{};
  bool running_ = false;
  int restarts_ = 0, failures_in_a_row_ = 0;
};

}  // namespace herd::agent

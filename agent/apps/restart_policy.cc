#include "agent/apps/restart_policy.h"

#include <algorithm>

namespace herd::agent {

Result<RestartPolicy> RestartPolicy::Make(Settings s) {
  if (s.mode != "on-failure" && s.mode != "always" && s.mode != "never") {
    return Status::Invalid("restart must be on-failure, always or never, not '" + s.mode + "'");
  }
  if (s.first_delay.count() <= 0 || s.max_delay < s.first_delay || s.reset_after.count() <= 0 ||
      s.crash_loop_failures < 1) {
    return Status::Invalid("restart delays must be positive, the first no longer than the longest");
  }
  return RestartPolicy(std::move(s));
}

void RestartPolicy::Started(Clock::time_point now) {
  if (running_) return;
  running_ = true;
  started_ = now;
}

std::optional<Clock::time_point> RestartPolicy::Ended(Clock::time_point now, bool failed) {
  const bool long_run = running_ && now - started_ >= s_.reset_after;
  running_ = false;
  if (long_run) {
    delay_ = s_.first_delay;
    failures_in_a_row_ = 0;
  }
  failures_in_a_row_ = failed ? failures_in_a_row_ + 1 : 0;
  if (s_.mode == "never" || (s_.mode == "on-failure" && !failed)) return std::nullopt;
  const ms wait = delay_;
  delay_ = std::min(delay_ * 2, s_.max_delay);
  ++restarts_;
  return now + wait;
}

}  // namespace herd::agent

#include "common/rate_limiter.h"

namespace herd {

RateLimiter::RateLimiter(int limit, std::chrono::milliseconds window, const Clock& clock)
    : limit_(limit), window_(window), clock_(clock) {}

bool RateLimiter::Allow(int* suppressed) {
  std::lock_guard<std::mutex> l(mu_);
  const auto now = clock_.Now();
  if (!started_ || now - window_start_ >= window_) {
    started_ = true;
    window_start_ = now;
    in_window_ = 0;
  }
  if (++in_window_ > limit_) {
    ++suppressed_;
    return false;
  }
  if (suppressed) *suppressed = suppressed_;
  suppressed_ = 0;
  return true;
}

}  // namespace herd

// Clock: the time source of code that waits or measures (the fan-out engine,
// rate limits), so that tests can drive time instead of sleeping. The real
// clock reads std::chrono::steady_clock and waits on condition variables;
// the fake one (tests/support/fakes.h) moves only when asked to, and jumps
// over a wait to its next timer. Implementations are thread-safe.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>

namespace herd {

class Clock {
 public:
  using time_point = std::chrono::steady_clock::time_point;
  virtual ~Clock() = default;
  virtual time_point Now() const = 0;
  // Waits until `ready()` holds (checked with `lock` held) or `timeout`
  // passes. `cv` is notified by whoever makes `ready()` true.
  virtual void WaitFor(std::unique_lock<std::mutex>& lock, std::condition_variable& cv,
                       std::chrono::milliseconds timeout,
                       const std::function<bool()>& ready) const = 0;

  // The process's monotonic clock; lives as long as the process.
  static const Clock& Real();
};

}  // namespace herd

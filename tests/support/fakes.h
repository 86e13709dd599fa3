// Fakes for unit tests of pure logic: a clock that moves only when asked,
// agents that answer as scripted (on that clock), and a reporter that
// records what it is told. Real parts (agents, the CLI) are for the
// integration tests.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "common/clock.h"
#include "control/agent_client.h"
#include "control/reporter.h"

namespace herd::testing {

// Time that moves only when told to. A wait (Clock::WaitFor) does not
// block: it jumps to the next timer due within the wait (running it and any
// others due then), or to the end of the wait. So an engine driven by it
// runs single-threaded and deterministically, as fast as it can.
class FakeClock final : public Clock {
 public:
  time_point Now() const override;
  void WaitFor(std::unique_lock<std::mutex>& lock, std::condition_variable& cv,
               std::chrono::milliseconds timeout,
               const std::function<bool()>& ready) const override;
  // Runs `fn` once the clock reaches `at` (on the thread that moves it).
  void At(time_point at, std::function<void()> fn) const;
  // Moves the clock forward by `d`, running the timers due on the way.
  void Advance(std::chrono::milliseconds d) const;
  // Milliseconds since the clock was made.
  long long ElapsedMs() const;

 private:
  void AdvanceTo(time_point to) const;
  const time_point start_ = time_point(std::chrono::hours(1000));
  mutable std::mutex mu_;  // guards now_, timers_
  mutable time_point now_ = start_;
  mutable std::multimap<time_point, std::function<void()>> timers_;
};

// How one fake host answers a call.
struct FakeHost {
  std::chrono::milliseconds latency{1};  // from the call's start to its end
  bool hang = false;                     // never ends by itself (a black hole)
  bool ignore_cancel = false;            // CancelAll does not end its calls
  Status status;                         // how it ends
  std::vector<std::string> messages;     // replies sent just before the end...
  // ...unless the method (full name) has replies of its own here.
  std::map<std::string, std::vector<std::string>> replies;
};

// AgentClients for fake hosts, keyed by address; unscripted addresses
// answer ok with one empty message after 1 ms. Records what was asked.
class FakeAgents final : public control::AgentClientFactory {
 public:
  explicit FakeAgents(const FakeClock& clock) : clock_(clock) {}
  void Script(const std::string& address, FakeHost host);
  std::unique_ptr<control::AgentClient> Connect(const std::string& address,
                                                const std::string& name) override;

  struct Stats {
    size_t started = 0, in_flight = 0, max_in_flight = 0;
    size_t cancel_requests = 0;      // CancelAll calls on clients with calls
    size_t cancelled = 0;            // calls ended by a cancellation
    size_t paused = 0;               // messages after which the engine said "stop reading"
    size_t resumed = 0;              // Resume calls
    std::vector<std::string> order;  // addresses, in the order calls started
    std::map<std::string, std::string> requests;  // address -> request bytes (the last call's)
  };
  Stats stats() const;

 private:
  friend class FakeAgentClient;
  friend void EndFakeCall(FakeAgents&, struct PendingCall&, const Status&,
                          const std::vector<std::string>&, bool);
  void Started(const std::string& address, const std::string& request);
  void Ended(bool cancelled);
  void CancelRequested();
  void Paused();
  void Resumed();
  const FakeClock& clock_;
  mutable std::mutex mu_;  // guards hosts_, stats_
  std::map<std::string, FakeHost> hosts_;
  Stats stats_;
};

// Records every Reporter call with the (fake) time it came at.
class RecordingReporter final : public control::Reporter {
 public:
  explicit RecordingReporter(const Clock& clock) : clock_(clock) {}
  struct Event {
    std::string kind;  // start, output, result, progress, finish
    std::string host;
    std::string data;  // output bytes, or the outcome of a result
    long long at_ms;   // Clock time since the reporter was made
  };
  void OnStart(size_t total) override;
  void OnOutput(const control::Host& host, bool is_stderr, std::string_view data) override;
  void OnResult(const control::HostResult& result) override;
  void OnProgress(const control::Progress& p) override;
  void OnFinish(const std::vector<control::HostResult>& results,
                std::chrono::milliseconds elapsed) override;

  std::vector<Event> events;
  std::vector<control::HostResult> results;  // in the order OnResult came
  std::vector<control::Progress> progress;
  size_t finished = 0;

 private:
  long long Ms() const;
  const Clock& clock_;
  const Clock::time_point created_ = clock_.Now();
};

}  // namespace herd::testing

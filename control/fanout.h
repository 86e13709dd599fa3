// The fan-out engine: runs one operation against many hosts with bounded
// concurrency, a deadline per host, and results reported as they arrive.
//
// Threads: Run() is called on one thread (the engine thread) and returns when
// every host has exactly one HostResult. Transport callbacks only push events
// into a mutex-guarded queue; scheduling and every Reporter call happen on the
// engine thread. No thread is created per host.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "control/agent_client.h"
#include "control/host_result.h"
#include "control/inventory.h"

namespace herd::control {

struct Progress {
  size_t total = 0, done = 0, in_flight = 0;
  Tally tally;  // of the hosts done
  std::chrono::milliseconds elapsed{0};
};

// All output goes through a Reporter; every method runs on the engine thread.
class Reporter {
 public:
  virtual ~Reporter() = default;
  virtual void OnStart(size_t /*total*/) {}
  virtual void OnOutput(const Host& /*host*/, bool /*is_stderr*/, std::string_view /*data*/) {}
  virtual void OnResult(const HostResult& result) = 0;
  virtual void OnProgress(const Progress& /*p*/) {}
  virtual void OnFinish(const std::vector<HostResult>& results,
                        std::chrono::milliseconds elapsed) = 0;
};

// What a task reports back for its host. Thread-safe; Finish exactly once.
class HostSink {
 public:
  virtual ~HostSink() = default;
  virtual void Output(bool is_stderr, std::string data) = 0;
  virtual void Finish(HostResult result) = 0;
};

// Starts one operation for one host on `client`; must not block. The engine
// fills host, address, duration and attempts in the result.
using HostTask = std::function<void(const Host& host, AgentClient& client, const CallOptions& opts,
                                    std::shared_ptr<HostSink> sink)>;

struct FanOutOptions {
  size_t forks = 128;                              // calls in flight at most
  std::chrono::milliseconds timeout{30'000};       // per host, from its start
  size_t collect_output_bytes = 0;                 // per host and stream kept in the result
  const std::atomic<bool>* interrupted = nullptr;  // set by a signal handler
  std::chrono::milliseconds progress_every{250};
};

class FanOut {
 public:
  FanOut(AgentClientFactory& factory, FanOutOptions opts) : factory_(factory), opts_(opts) {}

  // Results in the order of `hosts`.
  std::vector<HostResult> Run(const std::vector<const Host*>& hosts, const HostTask& task,
                              Reporter& reporter);

 private:
  AgentClientFactory& factory_;
  FanOutOptions opts_;
};

}  // namespace herd::control

// LocalExecutor: the fan-out engine. Runs an operation against many hosts
// from this process, one AgentClient per host, with bounded concurrency, a
// deadline per host, and results as they arrive (the Executor contract in
// control/executor.h).
//
// Threads: Run() is called on one thread (the engine thread) and returns when
// every host has ended. Transport callbacks only push events into a
// mutex-guarded queue; scheduling, deadlines and every listener call happen
// on the engine thread. No thread is created per host.
#pragma once

#include "control/executor.h"

namespace herd::control {

class LocalExecutor final : public Executor {
 public:
  LocalExecutor(AgentClientFactory& factory, ExecutorOptions opts)
      : factory_(factory), opts_(opts) {}

  void Run(const std::vector<const Host*>& hosts, const Operation& op,
           OperationListener& listener) override;

 private:
  AgentClientFactory& factory_;
  const ExecutorOptions opts_;
};

}  // namespace herd::control

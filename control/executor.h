// Executor: runs one operation against many hosts. The operation is data --
// which method, the request message, the options every host's call gets --
// so that the local fan-out engine (LocalExecutor, control/fanout.h) and,
// later, a relay on another agent run the same thing; what the replies mean
// is decided by the caller (control/task.h), never by the executor.
//
// Contract, for every implementation (a relay included):
//  - Run() returns once every host has ended: exactly one OnDone per host,
//    in any order. No host is left out, and none is reported twice, whatever
//    the transport does.
//  - Listener methods run on the thread that called Run(), one at a time,
//    never re-entrantly from a transport callback. They must not block.
//  - A host's OnMessage calls come in the order its agent sent them, all
//    before its OnDone.
//  - At most `forks` calls are in flight at once (for a relay: per hop). A
//    call holds its place until its transport has let go of it, also after
//    it was ended at its deadline.
//  - A host's call ends within its timeout (plus a short grace for the
//    transport's own report): one that does not answer ends with
//    kDeadlineExceeded and never holds up the others. Network faults end in
//    a CallEnd, never in a hang or an exception.
//  - When `*interrupted` becomes true, calls in flight are cancelled and end
//    with `interrupted` set; hosts not started end at once with `started`
//    false.
//  - A relay adds no authority: each hop presents the caller's own
//    credentials (or narrower ones), and every agent checks caller and role
//    itself.
#pragma once

#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/clock.h"
#include "control/agent_client.h"
#include "control/inventory.h"

namespace herd::control {

struct Operation {
  CallSpec call;  // what every host is asked, and its timeout
  // Hosts (by name) that get a request of their own instead of call.request
  // (certificate renewal: each host its own certificate).
  std::map<std::string, std::shared_ptr<const std::string>> request_for;
  // Hosts whose client stream is a stream of their own instead of
  // call.stream (an upload resumed where that host's ended).
  std::map<std::string, std::shared_ptr<const StreamSource>> stream_for;
};

// Receives what the hosts answer. `host` is the index into the host list
// given to Run().
class OperationListener {
 public:
  virtual ~OperationListener() = default;
  virtual void OnMessage(size_t host, std::string message) = 0;
  virtual void OnDone(size_t host, CallEnd end) = 0;
  // Every ExecutorOptions::progress_every while hosts are outstanding.
  virtual void OnProgress(size_t /*done*/, size_t /*in_flight*/,
                          std::chrono::milliseconds /*elapsed*/) {}
};

class Executor {
 public:
  virtual ~Executor() = default;
  virtual void Run(const std::vector<const Host*>& hosts, const Operation& op,
                   OperationListener& listener) = 0;
};

struct ExecutorOptions {
  size_t forks = 128;                              // calls in flight at most
  const std::atomic<bool>* interrupted = nullptr;  // set by a signal handler
  std::chrono::milliseconds progress_every{250};
  // How long a call may outlive its timeout before the executor ends it
  // itself (the transport normally reports first, at the deadline).
  std::chrono::milliseconds deadline_grace{2'000};
  // Longest wait between looks at the interrupt flag and the deadlines.
  std::chrono::milliseconds poll{50};
  const Clock* clock = &Clock::Real();
};

}  // namespace herd::control

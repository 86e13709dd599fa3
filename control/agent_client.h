// AgentClient: one host's management API, asynchronous, behind a herd
// interface so that the fan-out engine never sees gRPC, and so that relays
// or fakes can stand in for it (tests/support/fakes.h).
//
// A call is data: the method's full name, its shape, the serialised request
// and, for client streaming, the messages that follow. Replies come back
// serialised; the command that asked knows their type (control/tasks.h).
//
// Callback contract: Start calls `done` exactly once, on an arbitrary thread
// owned by the transport (never re-entrantly on the caller's thread).
// Callers keep the client alive until `done` has fired; a client destroyed
// earlier waits (bounded) for its calls to end, and a callback that fires
// after that must only touch what it holds itself. `on_message` calls of one call are serialised,
// in the order the agent sent them, and all happen before that call's `done`. Callbacks must not
// block.
//
// Flow control: `on_message` returns false when its receiver holds enough;
// the transport then reads no further message of that call (the agent's
// sends stall, and so does its command) until Resume(). A transport may
// ignore it (fakes do); a relay must honour it, or a slow reader's memory
// grows with the fleet's output.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include "common/defaults.h"
#include "common/status.h"

namespace herd::control {

enum class CallShape {
  kUnary,         // one request, one reply
  kServerStream,  // one request, replies until the end (Exec)
  kClientStream,  // the request, then `stream`'s messages, one reply (PutFile)
};

// The messages a client-streaming call sends after its request, made on
// demand, so that an upload is never held as messages. Shared by every
// host's call: const and thread-safe.
class StreamSource {
 public:
  virtual ~StreamSource() = default;
  // Serialises message `index` (0-based) into *out; false after the last.
  virtual bool Message(size_t index, std::string* out) const = 0;
};

struct CallSpec {
  std::string method;  // full name, "/herd.v1.Agent/Exec"
  CallShape shape = CallShape::kUnary;
  std::shared_ptr<const std::string> request;  // the (first) request message, serialised
  std::shared_ptr<const StreamSource> stream;  // kClientStream: what follows `request`
  std::chrono::milliseconds timeout = kDefaultHostTimeout;  // the call's deadline, from its start
};

// How one call ended.
struct CallEnd {
  // Ok, or why not. kUnavailable: the agent could not be reached (or the
  // connection broke); kDeadlineExceeded: no complete answer in time;
  // anything else: the agent answered with that error.
  Status status;
  // Reply messages received. More than zero with an error status means the
  // agent had answered before the call failed (output, then a broken
  // connection or the deadline).
  size_t messages = 0;
  // The version of the revocation list the agent holds, from the reply's
  // trailing metadata (kRevocationVersionKey); -1 when it did not say.
  int64_t revocation_version = -1;
  // From Start to the end; zero for a call never started.
  std::chrono::microseconds elapsed{0};
  // Set by the executor, never by a transport: the call was never started
  // (interrupted first); it ended after the operator interrupted (calls in
  // flight are cancelled then, so unless it succeeded it counts as cancelled).
  bool started = true;
  bool interrupted = false;
};

class AgentClient {
 public:
  using MessageFn = std::function<bool(std::string message)>;
  using DoneFn = std::function<void(CallEnd end)>;
  virtual ~AgentClient() = default;

  // Starts `call`; `call` and what it points to may be released once Start
  // returns (the client keeps what it needs).
  virtual void Start(const CallSpec& call, MessageFn on_message, DoneFn done) = 0;
  // Best-effort cancel of every call in flight; their `done` still fires.
  virtual void CancelAll() = 0;
  // Reads again the calls whose `on_message` returned false. Any thread.
  virtual void Resume() {}
};

class AgentClientFactory {
 public:
  virtual ~AgentClientFactory() = default;
  // `name` is the host's fleet name: the agent's certificate must carry it.
  virtual std::unique_ptr<AgentClient> Connect(const std::string& address,
                                               const std::string& name) = 0;
};

}  // namespace herd::control

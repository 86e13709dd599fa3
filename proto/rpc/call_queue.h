// herd's server-side gRPC framework, shared by herdd's services and the mux.
//
// gRPC's asynchronous API, one completion queue and one serving thread: that
// thread receives every call and does the network work, so a call costs no
// hand-off between gRPC's threads (measured cheaper here than gRPC 1.51's
// callback API, see bench/README.md). A service hands work that may block on
// the disk or on crypto to one slow-work thread, started at its first use
// (each service says which of its work stays on the serving thread), and
// work of longer life (commands) to its own workers, which start their
// writes themselves; completions always come back to the serving thread.
//
//   CallQueue  the queue, its serving thread, the slow-work thread, the set
//              of live calls and the drain on shutdown
//   LiveCall   base of every call object: registered with its queue while
//              alive, so that a stop frees the calls whose operations never
//              complete (the requests pending when the server shut down)
//   Service    one gRPC service on the framework (a file of handlers)
//   Server     a grpc::Server carrying services on one CallQueue
//
// Adding a service: a class implementing Service (see agent/agent_service.h
// and proto/rpc/unary_call.h), and one Server::Add line where the server is
// built. Threads are named in each method's comment.
#pragma once

#include <grpcpp/server.h>
#include <grpcpp/server_builder.h>
#include <grpcpp/server_context.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "proto/rpc/cq_tag.h"

namespace herd::rpc {

// Told about every finished call (metrics). Called from any thread.
class RpcObserver {
 public:
  virtual ~RpcObserver() = default;
  // `method` is the full name, "/herd.v1.Agent/Exec".
  virtual void OnRpcFinished(std::string_view method, grpc::StatusCode code) = 0;
};

class LiveCall;

class CallQueue {
 public:
  static constexpr size_t kMaxSlowQueued = 64;

  explicit CallQueue(RpcObserver* observer = nullptr);
  ~CallQueue();  // Stop()
  CallQueue(const CallQueue&) = delete;
  CallQueue& operator=(const CallQueue&) = delete;

  // Before the server is built: adds the completion queue to `builder`.
  void AddTo(grpc::ServerBuilder& builder);
  // After the server is built and the first calls are asked for: starts
  // the serving thread.
  void Start();
  // After the server's Shutdown: runs the slow work still queued, shuts the
  // queue down on the serving thread (calling OnDrain of every live call
  // there), drains it, joins, and frees the calls left. Idempotent.
  void Stop();

  grpc::ServerCompletionQueue* cq() const { return cq_.get(); }
  // True from the moment the serving thread shuts the queue down: no call
  // starts an operation after that (a late completion of a call cancelled
  // by the server's shutdown must not start its next one). Any thread.
  bool draining() const { return draining_.load(std::memory_order_acquire); }
  // Runs `fn` on the slow-work thread. False, and `fn` dropped, when
  // kMaxSlowQueued tasks wait already or the queue is stopping: the caller
  // answers RESOURCE_EXHAUSTED. Any thread.
  bool PostSlow(std::function<void()> fn);
  // Reports a finished call to the observer. Any thread.
  void Finished(std::string_view method, grpc::StatusCode code) const {
    if (observer_) observer_->OnRpcFinished(method, code);
  }

 private:
  friend class LiveCall;
  struct Impl;
  RpcObserver* const observer_;
  std::unique_ptr<grpc::ServerCompletionQueue> cq_;
  std::atomic<bool> draining_{false};
  std::unique_ptr<Impl> impl_;
};

class LiveCall {
 public:
  LiveCall(const LiveCall&) = delete;
  LiveCall& operator=(const LiveCall&) = delete;

 protected:
  explicit LiveCall(CallQueue& queue);  // registers with the queue
  virtual ~LiveCall();                  // and leaves it
  // On the serving thread as the queue shuts down, for every call still
  // alive: cancel what the call started on its own (the mux cancels its
  // call to the agent). The call is freed later, by its own completions or
  // by the queue.
  virtual void OnDrain() {}

  CallQueue& queue_;

 private:
  friend class CallQueue;
};

class Service {
 public:
  virtual ~Service() = default;
  // Registers the generated service (or a generic one) with `builder`.
  virtual void Register(grpc::ServerBuilder& builder) = 0;
  // Asks for the first call of every method, before the serving thread starts.
  virtual void Arm(CallQueue& queue) = 0;
};

// The peer of a call as the services see it: gRPC's peer string and the
// client certificate it presented (PEM, "" without one).
struct Peer {
  std::string address;
  std::string cert_pem;
};
Peer PeerOf(const grpc::ServerContextBase& ctx);

class Server {
 public:
  explicit Server(RpcObserver* observer = nullptr) : queue_(observer) {}
  ~Server() { Shutdown(std::chrono::milliseconds(0)); }

  // Before Start: the server keeps the service until it is destroyed.
  void Add(std::unique_ptr<Service> service) { services_.push_back(std::move(service)); }
  // Registers the services and the queue with `builder` (ports and options
  // already set), builds and starts the server, asks for the first calls
  // and starts the serving thread. An error when gRPC could not start it.
  Status Start(grpc::ServerBuilder& builder);
  // Stops accepting, lets calls in flight run for up to `grace` (then
  // cancels them), and stops the queue. Idempotent. Main thread.
  void Shutdown(std::chrono::milliseconds grace);

  CallQueue& queue() { return queue_; }

 private:
  std::vector<std::unique_ptr<Service>> services_;  // outlive every call (freed by queue_)
  CallQueue queue_;
  std::unique_ptr<grpc::Server> server_;
};

}  // namespace herd::rpc

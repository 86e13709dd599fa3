// UnaryCall: one call of a unary method on the framework of call_queue.h.
//
// A service lists its unary methods as `Method` constants (full name, the
// generated Request* function, the handler, whether it is slow) and arms
// each once in Service::Arm; every call asks for the next one as it
// arrives. The handler runs on the serving thread, or on the slow-work
// thread when the method is slow (disk, crypto), fills `reply` and returns
// the status; `after` (if the handler set it) runs once the reply is sent.
// The call frees itself when its Finish completes, or is freed by the
// queue's stop.
#pragma once

#include <grpcpp/completion_queue.h>
#include <grpcpp/server_context.h>
#include <grpcpp/support/async_unary_call.h>

#include <functional>

#include "proto/rpc/call_queue.h"

namespace herd::rpc {

// S: the service's state handed to handlers; A: the generated AsyncService.
template <class S, class A, class Req, class Rep>
class UnaryCall final : public LiveCall {
 public:
  using RequestFn = void (A::*)(grpc::ServerContext*, Req*, grpc::ServerAsyncResponseWriter<Rep>*,
                                grpc::CompletionQueue*, grpc::ServerCompletionQueue*, void*);
  using Handler = grpc::Status (*)(S&, UnaryCall&);
  struct Method {
    const char* name;  // full name, "/herd.v1.Agent/Info"
    RequestFn request;
    Handler handler;
    bool slow;
  };

  // Asks for the next call of `m`. Serving thread (or before it starts).
  static void Arm(CallQueue& q, A& async, S& state, const Method& m) {
    if (!q.draining()) new UnaryCall(q, async, state, m);
  }

  // A handler whose work goes on on a thread of its own returns Deferred();
  // that thread then calls Complete exactly once, before the queue stops
  // (its owner joins it first). The call may be freed as soon as Complete
  // is called: nothing touches it afterwards.
  static grpc::Status Deferred() { return grpc::Status(grpc::StatusCode::DO_NOT_USE, ""); }
  void Complete(const grpc::Status& st) { Finish(st); }

  grpc::ServerContext& ctx() { return ctx_; }
  const char* method() const { return m_.name; }
  Req req;
  Rep reply;
  std::function<void()> after;

 private:
  UnaryCall(CallQueue& q, A& async, S& state, const Method& m)
      : LiveCall(q), async_(async), state_(state), m_(m) {
    (async.*m.request)(&ctx_, &req, &writer_, q.cq(), q.cq(), &requested_);
  }
  void OnRequested(bool ok) {
    if (!ok || queue_.draining()) return;  // the server is shutting down: freed by the queue
    Arm(queue_, async_, state_, m_);
    if (!m_.slow) return Run();
    if (!queue_.PostSlow([this] { Run(); })) {
      Finish(grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                          "the agent is busy: too many slow calls queued"));
    }
  }
  void Run() {
    const grpc::Status st = m_.handler(state_, *this);
    if (st.error_code() != grpc::StatusCode::DO_NOT_USE) Finish(st);
  }
  void Finish(const grpc::Status& st) {
    if (queue_.draining()) return;  // freed by the queue
    queue_.Finished(m_.name, st.error_code());
    writer_.Finish(reply, st, &finished_);
  }
  void OnFinished(bool) {
    if (after) after();
    delete this;
  }

  A& async_;
  S& state_;
  const Method& m_;
  grpc::ServerContext ctx_;
  grpc::ServerAsyncResponseWriter<Rep> writer_{&ctx_};
  OpTag<UnaryCall> requested_{this, &UnaryCall::OnRequested};
  OpTag<UnaryCall> finished_{this, &UnaryCall::OnFinished};
};

}  // namespace herd::rpc

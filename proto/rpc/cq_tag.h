// Tags for gRPC's completion-queue API (call_queue.h): every pending
// operation is a CqTag, and the serving thread calls Done(ok) on whatever
// Next() hands back.
#pragma once

#include <grpcpp/alarm.h>
#include <grpcpp/completion_queue.h>

namespace herd::rpc {

class CqTag {
 public:
  virtual void Done(bool ok) = 0;

 protected:
  ~CqTag() = default;
};

// A CqTag that calls a member function of its owner.
template <class T>
class OpTag final : public CqTag {
 public:
  OpTag(T* owner, void (T::*fn)(bool)) : owner_(owner), fn_(fn) {}
  void Done(bool ok) override { (owner_->*fn_)(ok); }

 private:
  T* const owner_;
  void (T::*const fn_)(bool);
};

// Runs the queue until it is shut down and drained.
inline void ServeQueue(grpc::CompletionQueue& cq) {
  void* tag = nullptr;
  bool ok = false;
  while (cq.Next(&tag, &ok)) static_cast<CqTag*>(tag)->Done(ok);
}

// Runs `on_stop` on the serving thread, then shuts `cq` down there, and
// returns once `serving` (the thread in ServeQueue) has drained it and ended.
// Whatever the serving thread does in reaction to a completion happens either
// before `on_stop` or after it, never at the same time, so that a flag set by
// `on_stop` reliably stops new operations.
template <class Thread, class Fn>
void StopQueue(grpc::CompletionQueue& cq, Thread& serving, Fn on_stop) {
  class StopTag final : public CqTag {
   public:
    StopTag(grpc::CompletionQueue& cq, Fn& fn) : cq_(cq), fn_(fn) {}
    void Done(bool) override {
      fn_();
      cq_.Shutdown();
    }

   private:
    grpc::CompletionQueue& cq_;
    Fn& fn_;
  };
  StopTag stop(cq, on_stop);
  grpc::Alarm alarm;
  alarm.Set(&cq, gpr_now(GPR_CLOCK_MONOTONIC), &stop);
  serving.join();
}

}  // namespace herd::rpc

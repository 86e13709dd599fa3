#include "proto/rpc/call_queue.h"

#include <grpc/grpc_security_constants.h>

#include <condition_variable>
#include <deque>
#include <mutex>
#include <set>
#include <thread>

namespace herd::rpc {
namespace {

// One thread for the work that may block on the disk or on crypto, started
// at the first Post. At most CallQueue::kMaxSlowQueued tasks wait.
class SlowWorker {
 public:
  bool Post(std::function<void()> fn) {
    std::lock_guard<std::mutex> l(mu_);
    if (stopped_ || queue_.size() >= CallQueue::kMaxSlowQueued) return false;
    queue_.push_back(std::move(fn));
    if (!thread_.joinable()) thread_ = std::thread([this] { Loop(); });
    cv_.notify_one();
    return true;
  }

  // Runs what is queued, then joins. Post refuses from then on.
  void Stop() {
    {
      std::lock_guard<std::mutex> l(mu_);
      stopped_ = true;
      cv_.notify_one();
    }
    if (thread_.joinable()) thread_.join();
  }

 private:
  void Loop() {
    std::unique_lock<std::mutex> l(mu_);
    for (;;) {
      cv_.wait(l, [&] { return stopped_ || !queue_.empty(); });
      if (queue_.empty()) return;
      auto fn = std::move(queue_.front());
      queue_.pop_front();
      l.unlock();
      fn();
      l.lock();
    }
  }

  std::mutex mu_;  // guards queue_, stopped_, thread_
  std::condition_variable cv_;
  std::deque<std::function<void()>> queue_;
  bool stopped_ = false;
  std::thread thread_;
};

}  // namespace

struct CallQueue::Impl {
  std::thread serving;
  SlowWorker slow;
  std::mutex live_mu;  // guards live
  std::set<LiveCall*> live;
};

CallQueue::CallQueue(RpcObserver* observer)
    : observer_(observer), impl_(std::make_unique<Impl>()) {}

CallQueue::~CallQueue() { Stop(); }

void CallQueue::AddTo(grpc::ServerBuilder& builder) { cq_ = builder.AddCompletionQueue(); }

void CallQueue::Start() {
  impl_->serving = std::thread([this] { ServeQueue(*cq_); });
}

bool CallQueue::PostSlow(std::function<void()> fn) { return impl_->slow.Post(std::move(fn)); }

void CallQueue::Stop() {
  if (!impl_->serving.joinable()) return;
  impl_->slow.Stop();
  StopQueue(*cq_, impl_->serving, [this] {
    draining_.store(true, std::memory_order_release);
    // Calls are freed on this thread only, so the copy stays valid without
    // the lock (which OnDrain may need, to make or free calls).
    std::set<LiveCall*> live;
    {
      std::lock_guard<std::mutex> l(impl_->live_mu);
      live = impl_->live;
    }
    for (LiveCall* c : live) c->OnDrain();
  });
  // What is left waits for operations that will never complete.
  std::set<LiveCall*> left;
  {
    std::lock_guard<std::mutex> l(impl_->live_mu);
    left.swap(impl_->live);
  }
  for (LiveCall* c : left) delete c;
}

LiveCall::LiveCall(CallQueue& queue) : queue_(queue) {
  std::lock_guard<std::mutex> l(queue_.impl_->live_mu);
  queue_.impl_->live.insert(this);
}

LiveCall::~LiveCall() {
  std::lock_guard<std::mutex> l(queue_.impl_->live_mu);
  queue_.impl_->live.erase(this);
}

Peer PeerOf(const grpc::ServerContextBase& ctx) {
  Peer p;
  p.address = ctx.peer();
  auto auth = ctx.auth_context();
  if (!auth) return p;
  auto pems = auth->FindPropertyValues(GRPC_X509_PEM_CERT_PROPERTY_NAME);
  if (!pems.empty()) p.cert_pem.assign(pems.front().data(), pems.front().size());
  return p;
}

Status Server::Start(grpc::ServerBuilder& builder) {
  for (auto& s : services_) s->Register(builder);
  queue_.AddTo(builder);
  server_ = builder.BuildAndStart();
  if (!server_) return Status(StatusCode::kUnavailable, "the gRPC server did not start");
  for (auto& s : services_) s->Arm(queue_);
  queue_.Start();
  return Status::Ok();
}

void Server::Shutdown(std::chrono::milliseconds grace) {
  if (!server_) return;
  server_->Shutdown(std::chrono::system_clock::now() + grace);
  queue_.Stop();
  server_.reset();
}

}  // namespace herd::rpc

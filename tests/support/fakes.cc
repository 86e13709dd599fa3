#include "tests/support/fakes.h"

namespace herd::testing {

Clock::time_point FakeClock::Now() const {
  std::lock_guard<std::mutex> l(mu_);
  return now_;
}

long long FakeClock::ElapsedMs() const {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Now() - start_).count();
}

void FakeClock::At(time_point at, std::function<void()> fn) const {
  std::lock_guard<std::mutex> l(mu_);
  timers_.emplace(at, std::move(fn));
}

void FakeClock::Advance(std::chrono::milliseconds d) const { AdvanceTo(Now() + d); }

void FakeClock::AdvanceTo(time_point to) const {
  // Timers run without the lock: they may set new ones.
  for (int i = 0; i < 1'000'000; ++i) {
    std::function<void()> fn;
    {
      std::lock_guard<std::mutex> l(mu_);
      if (timers_.empty() || timers_.begin()->first > to) break;
      now_ = std::max(now_, timers_.begin()->first);
      fn = std::move(timers_.begin()->second);
      timers_.erase(timers_.begin());
    }
    fn();
  }
  std::lock_guard<std::mutex> l(mu_);
  now_ = std::max(now_, to);
}

void FakeClock::WaitFor(std::unique_lock<std::mutex>& lock, std::condition_variable&,
                        std::chrono::milliseconds timeout,
                        const std::function<bool()>& ready) const {
  if (ready()) return;
  const time_point until = Now() + timeout;
  time_point next = until;
  {
    std::lock_guard<std::mutex> l(mu_);
    if (!timers_.empty()) next = std::min(next, timers_.begin()->first);
  }
  lock.unlock();
  AdvanceTo(next);
  lock.lock();
}

// What a fake call shares with its timer, which may fire after the client
// is gone.
struct PendingCall {
  std::mutex mu;  // guards ended
  bool ended = false;
  control::AgentClient::MessageFn on_message;
  control::AgentClient::DoneFn done;
  Clock::time_point started;
};

// Ends `p` once: its messages, then its end. Runs on the thread that moves
// the clock; the client may be gone by then.
void EndFakeCall(FakeAgents& agents, PendingCall& p, const Status& status,
                 const std::vector<std::string>& messages, bool cancelled) {
  {
    std::lock_guard<std::mutex> l(p.mu);
    if (p.ended) return;
    p.ended = true;
  }
  for (const auto& m : messages) {
    if (!p.on_message(m)) agents.Paused();  // a fake delivers the rest regardless
  }
  control::CallEnd end;
  end.status = status;
  end.messages = messages.size();
  end.elapsed =
      std::chrono::duration_cast<std::chrono::microseconds>(agents.clock_.Now() - p.started);
  agents.Ended(cancelled);
  p.done(std::move(end));
}

class FakeAgentClient final : public control::AgentClient {
 public:
  FakeAgentClient(FakeAgents& agents, std::string address, FakeHost host)
      : agents_(agents), address_(std::move(address)), host_(std::move(host)) {}

  void Start(const control::CallSpec& call, MessageFn on_message, DoneFn done) override {
    agents_.Started(address_, call.request ? *call.request : "");
    auto p = std::make_shared<PendingCall>();
    p->on_message = std::move(on_message);
    p->done = std::move(done);
    p->started = agents_.clock_.Now();
    calls_.push_back(p);
    if (host_.hang) return;
    auto it = host_.replies.find(call.method);
    agents_.clock_.At(p->started + host_.latency,
                      [a = &agents_, p, status = host_.status,
                       messages = it == host_.replies.end() ? host_.messages : it->second] {
                        EndFakeCall(*a, *p, status, messages, false);
                      });
  }

  void Resume() override { agents_.Resumed(); }

  void CancelAll() override {
    if (!calls_.empty()) agents_.CancelRequested();
    if (host_.ignore_cancel) return;
    for (auto& p : calls_) {
      // Delivered on the clock's next move, as a transport thread would.
      agents_.clock_.At(agents_.clock_.Now(), [a = &agents_, p] {
        EndFakeCall(*a, *p, Status::Internal("Cancelled"), {}, true);
      });
    }
  }

 private:
  FakeAgents& agents_;
  const std::string address_;
  const FakeHost host_;
  std::vector<std::shared_ptr<PendingCall>> calls_;
};

void FakeAgents::Script(const std::string& address, FakeHost host) {
  std::lock_guard<std::mutex> l(mu_);
  hosts_[address] = std::move(host);
}

std::unique_ptr<control::AgentClient> FakeAgents::Connect(const std::string& address,
                                                          const std::string&) {
  FakeHost host;
  host.messages = {""};
  {
    std::lock_guard<std::mutex> l(mu_);
    if (auto it = hosts_.find(address); it != hosts_.end()) host = it->second;
  }
  return std::make_unique<FakeAgentClient>(*this, address, std::move(host));
}

FakeAgents::Stats FakeAgents::stats() const {
  std::lock_guard<std::mutex> l(mu_);
  return stats_;
}

void FakeAgents::Started(const std::string& address, const std::string& request) {
  std::lock_guard<std::mutex> l(mu_);
  ++stats_.started;
  ++stats_.in_flight;
  stats_.max_in_flight = std::max(stats_.max_in_flight, stats_.in_flight);
  stats_.order.push_back(address);
  stats_.requests[address] = request;
}

void FakeAgents::Paused() {
  std::lock_guard<std::mutex> l(mu_);
  ++stats_.paused;
}

void FakeAgents::Resumed() {
  std::lock_guard<std::mutex> l(mu_);
  ++stats_.resumed;
}

void FakeAgents::CancelRequested() {
  std::lock_guard<std::mutex> l(mu_);
  ++stats_.cancel_requests;
}

void FakeAgents::Ended(bool cancelled) {
  std::lock_guard<std::mutex> l(mu_);
  --stats_.in_flight;
  if (cancelled) ++stats_.cancelled;
}

long long RecordingReporter::Ms() const {
  return std::chrono::duration_cast<std::chrono::milliseconds>(clock_.Now() - created_).count();
}

void RecordingReporter::OnStart(size_t total) {
  events.push_back({"start", "", std::to_string(total), Ms()});
}
void RecordingReporter::OnOutput(const control::Host& host, bool, std::string_view data) {
  events.push_back({"output", host.name, std::string(data), Ms()});
}
void RecordingReporter::OnResult(const control::HostResult& r) {
  events.push_back({"result", r.host, control::OutcomeName(r.outcome), Ms()});
  results.push_back(r);
}
void RecordingReporter::OnProgress(const control::Progress& p) {
  events.push_back({"progress", "", std::to_string(p.done), Ms()});
  progress.push_back(p);
}
void RecordingReporter::OnFinish(const std::vector<control::HostResult>&,
                                 std::chrono::milliseconds) {
  events.push_back({"finish", "", "", Ms()});
  ++finished;
}

}  // namespace herd::testing

#include "control/fanout.h"

#include <condition_variable>
#include <deque>
#include <mutex>

namespace herd::control {
namespace {

// What a transport callback hands to the engine thread.
struct Event {
  size_t index;
  bool finished;
  std::string message;  // a reply message (!finished)
  CallEnd end;          // how the call ended (finished)
};

// Transport threads push, the engine thread takes. Each host's messages
// not yet taken are bounded: past kHostBudget bytes its transport is told to
// stop reading, and resumed once the engine has taken them.
class Collector {
 public:
  static constexpr size_t kHostBudget = 256 << 10;
  Collector(const Clock& clock, size_t hosts)
      : clock_(clock), queued_(hosts, 0), paused_(hosts, 0) {}
  // False when the host's transport should stop reading.
  bool Push(Event e) {
    bool more = true;
    {
      std::lock_guard<std::mutex> l(mu_);
      if (!e.finished) {
        queued_[e.index] += e.message.size();
        if (queued_[e.index] > kHostBudget) more = !(paused_[e.index] = 1);
      }
      events_.push_back(std::move(e));
    }
    cv_.notify_one();
    return more;
  }
  // The hosts that were paused and whose messages have all been taken since.
  std::vector<size_t> Resumable() {
    std::lock_guard<std::mutex> l(mu_);
    std::vector<size_t> out;
    for (size_t i : taken_) {
      if (paused_[i] && queued_[i] == 0) {
        paused_[i] = 0;
        out.push_back(i);
      }
    }
    taken_.clear();
    return out;
  }
  // Waits up to `wait` for events; returns all queued ones.
  std::deque<Event> Take(std::chrono::milliseconds wait) {
    std::unique_lock<std::mutex> l(mu_);
    clock_.WaitFor(l, cv_, wait, [&] { return !events_.empty(); });
    std::deque<Event> out;
    out.swap(events_);
    for (const auto& e : out) {
      if (e.finished) continue;
      queued_[e.index] -= e.message.size();
      taken_.push_back(e.index);
    }
    return out;
  }

 private:
  const Clock& clock_;
  std::mutex mu_;  // guards events_
  std::condition_variable cv_;
  std::deque<Event> events_;
  std::vector<size_t> queued_;  // bytes of messages pushed, not taken, by host
  std::vector<char> paused_;    // told to stop reading
  std::vector<size_t> taken_;   // hosts with messages taken since Resumable
};

// One host's call as the engine tracks it.
struct Slot {
  std::unique_ptr<AgentClient> client;  // kept until its `done` has fired
  Clock::time_point started{};
  size_t messages = 0;
  bool finished = false;    // its OnDone was reported
  bool done_fired = false;  // the transport's `done` came (the client may go)
  bool holds_fork = false;  // counted in `in_flight`
};

}  // namespace

void LocalExecutor::Run(const std::vector<const Host*>& hosts, const Operation& op,
                        OperationListener& listener) {
  const Clock& clock = *opts_.clock;
  const size_t n = hosts.size();
  const size_t forks = std::max<size_t>(1, opts_.forks);
  // Shared with the callbacks, which may outlive this frame only until the
  // clients they belong to are destroyed below.
  auto collector = std::make_shared<Collector>(clock, n);
  std::vector<Slot> slots(n);
  const auto t0 = clock.Now();
  auto next_progress = t0 + opts_.progress_every;
  size_t next = 0, in_flight = 0, done = 0;
  size_t low = 0;  // every host before it has ended: deadlines are looked at from here
  bool cancelled = false;

  auto finish = [&](size_t i, CallEnd end) {
    slots[i].finished = true;
    ++done;
    listener.OnDone(i, std::move(end));
  };
  auto elapsed_of = [&](size_t i) {
    return std::chrono::duration_cast<std::chrono::microseconds>(clock.Now() - slots[i].started);
  };

  // A call holds its fork until the transport's `done` comes, also after the
  // engine ended it at its deadline; only a transport that stays silent
  // another grace after that gives the fork back without it.
  const auto overdue = [&](const Slot& s) {
    return s.started + op.call.timeout + opts_.deadline_grace;
  };
  const auto abandoned = [&](const Slot& s) { return overdue(s) + opts_.deadline_grace; };
  auto release = [&](Slot& s) {
    if (s.holds_fork) --in_flight;
    s.holds_fork = false;
  };
  // Takes what the transports sent within `wait`.
  auto take = [&](std::chrono::milliseconds wait) {
    for (auto& e : collector->Take(wait)) {
      Slot& s = slots[e.index];
      if (!e.finished) {
        ++s.messages;
        if (!s.finished) listener.OnMessage(e.index, std::move(e.message));
        continue;
      }
      s.done_fired = true;
      release(s);
      if (!s.finished) {
        e.end.interrupted = cancelled;
        finish(e.index, std::move(e.end));
      }
      s.client.reset();
    }
    for (size_t i : collector->Resumable()) {
      if (slots[i].client && !slots[i].done_fired) slots[i].client->Resume();
    }
  };

  while (done < n) {
    if (opts_.interrupted && opts_.interrupted->load() && !cancelled) {
      cancelled = true;
      for (auto& s : slots) {
        if (s.client && !s.done_fired) s.client->CancelAll();
      }
      for (; next < n; ++next) {
        CallEnd end;
        end.status = Status(StatusCode::kUnavailable, "not started: interrupted");
        end.started = false;
        end.interrupted = true;
        finish(next, std::move(end));
      }
    }
    while (!cancelled && in_flight < forks && next < n) {
      const size_t i = next++;
      Slot& s = slots[i];
      s.client = factory_.Connect(hosts[i]->address, hosts[i]->name);
      s.started = clock.Now();
      s.holds_fork = true;
      ++in_flight;
      CallSpec call = op.call;
      if (auto it = op.request_for.find(hosts[i]->name); it != op.request_for.end()) {
        call.request = it->second;
      }
      if (auto it = op.stream_for.find(hosts[i]->name); it != op.stream_for.end()) {
        call.stream = it->second;
      }
      s.client->Start(
          call,
          [collector, i](std::string m) {
            return collector->Push({i, false, std::move(m), {}});
          },
          [collector, i](CallEnd end) {
            collector->Push({i, true, {}, std::move(end)});
          });
    }
    if (done >= n) break;

    // Sleep until an event, the next deadline, or the next look at the flag.
    while (low < next && slots[low].finished && !slots[low].holds_fork) ++low;
    const auto now = clock.Now();
    auto wake = now + opts_.poll;
    for (size_t i = low; i < next; ++i) {
      const Slot& s = slots[i];
      if (!s.finished) wake = std::min(wake, overdue(s));
      if (s.finished && s.holds_fork) wake = std::min(wake, abandoned(s));
    }
    take(std::max(std::chrono::milliseconds(0),
                  std::chrono::duration_cast<std::chrono::milliseconds>(wake - now)));

    // A call the transport has not ended well past its deadline is ended
    // here and cancelled; its client stays until its own `done` comes.
    const auto after = clock.Now();
    for (size_t i = low; i < next; ++i) {
      Slot& s = slots[i];
      if (!s.client || s.done_fired) continue;
      if (s.finished) {
        if (s.holds_fork && after >= abandoned(s)) release(s);
        continue;
      }
      if (after < overdue(s)) continue;
      s.client->CancelAll();
      CallEnd end;
      end.status = Status(StatusCode::kDeadlineExceeded, "no answer before the deadline");
      end.messages = s.messages;
      end.elapsed = elapsed_of(i);
      end.interrupted = cancelled;
      finish(i, std::move(end));
    }
    if (after >= next_progress) {
      next_progress = after + opts_.progress_every;
      listener.OnProgress(done, in_flight,
                          std::chrono::duration_cast<std::chrono::milliseconds>(after - t0));
    }
  }
  // Calls ended at their deadline were cancelled: their `done` comes soon.
  // They are waited for together, one grace at most, before their clients
  // go (each client's destructor would otherwise wait on its own).
  const auto give_up = clock.Now() + opts_.deadline_grace;
  for (int i = 0; i < 100000; ++i) {
    bool waiting = false;
    for (const auto& s : slots) waiting = waiting || (s.client && !s.done_fired);
    const auto now = clock.Now();
    if (!waiting || now >= give_up) break;
    take(
        std::min(opts_.poll, std::chrono::duration_cast<std::chrono::milliseconds>(give_up - now)));
  }
  slots.clear();
}

}  // namespace herd::control

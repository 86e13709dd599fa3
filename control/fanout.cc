#include "control/fanout.h"

#include <condition_variable>
#include <deque>
#include <mutex>

namespace herd::control {
namespace {

using Clock = std::chrono::steady_clock;

struct Event {
  size_t index;
  bool finished;
  bool is_stderr;
  std::string data;
  HostResult result;
};

// Transport threads push, the engine thread pops.
class Collector {
 public:
  void Push(Event e) {
    {
      std::lock_guard<std::mutex> l(mu_);
      events_.push_back(std::move(e));
    }
    cv_.notify_one();
  }
  // Waits up to `wait` for events; returns all queued ones.
  std::deque<Event> Take(std::chrono::milliseconds wait) {
    std::unique_lock<std::mutex> l(mu_);
    cv_.wait_for(l, wait, [&] { return !events_.empty(); });
    std::deque<Event> out;
    out.swap(events_);
    return out;
  }

 private:
  std::mutex mu_;  // guards events_
  std::condition_variable cv_;
  std::deque<Event> events_;
};

class Sink : public HostSink {
 public:
  Sink(std::shared_ptr<Collector> c, size_t index) : c_(std::move(c)), index_(index) {}
  void Output(bool is_stderr, std::string data) override {
    c_->Push(Event{index_, false, is_stderr, std::move(data), {}});
  }
  void Finish(HostResult result) override {
    c_->Push(Event{index_, true, false, {}, std::move(result)});
  }

 private:
  std::shared_ptr<Collector> c_;
  size_t index_;
};

void Append(std::string* buf, std::string_view data, size_t cap, bool* truncated) {
  if (buf->size() >= cap) {
    *truncated = *truncated || !data.empty();
    return;
  }
  size_t n = std::min(cap - buf->size(), data.size());
  buf->append(data.data(), n);
  if (n < data.size()) *truncated = true;
}

}  // namespace

std::vector<HostResult> FanOut::Run(const std::vector<const Host*>& hosts, const HostTask& task,
                                    Reporter& reporter) {
  const size_t n = hosts.size();
  const size_t forks = std::max<size_t>(1, opts_.forks);
  auto collector = std::make_shared<Collector>();
  std::vector<HostResult> results(n);
  std::vector<std::string> out_buf(n), err_buf(n);
  std::vector<char> out_truncated(n, 0);
  std::vector<std::unique_ptr<AgentClient>> clients(n);
  std::vector<Clock::time_point> started(n);
  std::vector<bool> finished(n, false);

  const auto t0 = Clock::now();
  auto next_progress = t0 + opts_.progress_every;
  size_t next = 0, in_flight = 0, done = 0;
  bool cancelled = false;
  Progress progress;
  progress.total = n;
  reporter.OnStart(n);

  auto finish = [&](size_t i, HostResult r) {
    r.host = hosts[i]->name;
    r.address = hosts[i]->address;
    if (r.attempts == 0 && r.outcome != Outcome::kSkipped && r.outcome != Outcome::kCancelled) {
      r.attempts = 1;
    }
    if (clients[i]) {
      r.duration = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started[i]);
    }
    if (opts_.collect_output_bytes > 0) {
      if (r.stdout_data.empty()) r.stdout_data = std::move(out_buf[i]);
      if (r.stderr_data.empty()) r.stderr_data = std::move(err_buf[i]);
      r.output_truncated = r.output_truncated || out_truncated[i];
    }
    finished[i] = true;
    ++done;
    progress.tally.Add(r.outcome);
    results[i] = std::move(r);
    reporter.OnResult(results[i]);
  };

  while (done < n) {
    const bool stop = opts_.interrupted && opts_.interrupted->load();
    if (stop && !cancelled) {
      cancelled = true;
      for (size_t i = 0; i < n; ++i) {
        if (clients[i] && !finished[i]) clients[i]->CancelAll();
      }
      for (; next < n; ++next) {
        HostResult r;
        r.outcome = Outcome::kCancelled;
        r.message = "not started: interrupted";
        r.error_code = "cancelled";
        finish(next, std::move(r));
      }
    }
    while (!cancelled && in_flight < forks && next < n) {
      const size_t i = next++;
      clients[i] = factory_.Connect(hosts[i]->address, hosts[i]->name);
      started[i] = Clock::now();
      CallOptions call;
      call.deadline = std::chrono::system_clock::now() + opts_.timeout;
      ++in_flight;
      task(*hosts[i], *clients[i], call, std::make_shared<Sink>(collector, i));
    }
    if (done >= n) break;
    for (auto& e : collector->Take(std::chrono::milliseconds(50))) {
      if (finished[e.index]) continue;
      if (!e.finished) {
        if (opts_.collect_output_bytes > 0) {
          bool truncated = out_truncated[e.index];
          Append(e.is_stderr ? &err_buf[e.index] : &out_buf[e.index], e.data,
                 opts_.collect_output_bytes, &truncated);
          out_truncated[e.index] = truncated;
        }
        reporter.OnOutput(*hosts[e.index], e.is_stderr, e.data);
        continue;
      }
      if (cancelled && e.result.outcome != Outcome::kOk) {
        e.result.outcome = Outcome::kCancelled;
        e.result.message = "interrupted: the call was cancelled";
        e.result.error_code = "cancelled";
      }
      --in_flight;
      finish(e.index, std::move(e.result));
      clients[e.index].reset();
    }
    const auto now = Clock::now();
    if (now >= next_progress) {
      next_progress = now + opts_.progress_every;
      progress.done = done;
      progress.in_flight = in_flight;
      progress.elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(now - t0);
      reporter.OnProgress(progress);
    }
  }
  reporter.OnFinish(results,
                    std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0));
  return results;
}

}  // namespace herd::control

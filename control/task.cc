#include "control/task.h"

namespace herd::control {
namespace {

// Appends `data` to `buf` up to `cap` bytes; notes what did not fit.
void Append(std::string* buf, std::string_view data, size_t cap, bool* truncated) {
  if (buf->size() >= cap) {
    *truncated = *truncated || !data.empty();
    return;
  }
  size_t n = std::min(cap - buf->size(), data.size());
  buf->append(data.data(), n);
  if (n < data.size()) *truncated = true;
}

// Feeds the executor's events to the readers and the reporter.
class TaskRun final : public OperationListener {
 public:
  TaskRun(const std::vector<const Host*>& hosts, const Task& task, Reporter& reporter)
      : hosts_(hosts),
        task_(task),
        reporter_(reporter),
        results_(hosts.size()),
        readers_(hosts.size()),
        out_(hosts.size()),
        err_(hosts.size()),
        truncated_(hosts.size(), 0) {}

  void OnMessage(size_t i, std::string message) override {
    Reader(i).OnMessage(message, [&](bool is_stderr, std::string_view data) {
      if (task_.collect_output_bytes > 0) {
        bool t = truncated_[i];
        Append(is_stderr ? &err_[i] : &out_[i], data, task_.collect_output_bytes, &t);
        truncated_[i] = t;
      }
      reporter_.OnOutput(*hosts_[i], is_stderr, data);
    });
  }

  void OnDone(size_t i, CallEnd end) override {
    HostResult r;
    if (!end.started) {
      r.outcome = Outcome::kCancelled;
      r.message = "not started: interrupted";
      r.error_code = "cancelled";
    } else {
      r = Reader(i).Finish(end);
      if (end.interrupted && r.outcome != Outcome::kOk) {
        r.outcome = Outcome::kCancelled;
        r.message = "interrupted: the call was cancelled";
        r.error_code = "cancelled";
      }
      r.duration = std::chrono::duration_cast<std::chrono::milliseconds>(end.elapsed);
      r.revocation_version = end.revocation_version;
    }
    r.host = hosts_[i]->name;
    r.address = hosts_[i]->address;
    if (r.attempts == 0 && r.outcome != Outcome::kSkipped && r.outcome != Outcome::kCancelled) {
      r.attempts = 1;
    }
    if (task_.collect_output_bytes > 0) {
      if (r.stdout_data.empty()) r.stdout_data = std::move(out_[i]);
      if (r.stderr_data.empty()) r.stderr_data = std::move(err_[i]);
      r.output_truncated = r.output_truncated || truncated_[i];
    }
    readers_[i].reset();
    tally_.Add(r.outcome);
    results_[i] = std::move(r);
    reporter_.OnResult(results_[i]);
    if (!reporter_.KeepsOutput()) {
      std::string().swap(results_[i].stdout_data);
      std::string().swap(results_[i].stderr_data);
    }
  }

  void OnProgress(size_t done, size_t in_flight, std::chrono::milliseconds elapsed) override {
    Progress p;
    p.total = hosts_.size();
    p.done = done;
    p.in_flight = in_flight;
    p.tally = tally_;
    p.elapsed = elapsed;
    reporter_.OnProgress(p);
  }

  std::vector<HostResult> TakeResults() { return std::move(results_); }

 private:
  ReplyReader& Reader(size_t i) {
    if (!readers_[i]) readers_[i] = task_.make_reader(*hosts_[i]);
    return *readers_[i];
  }

  const std::vector<const Host*>& hosts_;
  const Task& task_;
  Reporter& reporter_;
  std::vector<HostResult> results_;
  std::vector<std::unique_ptr<ReplyReader>> readers_;
  std::vector<std::string> out_, err_;
  std::vector<char> truncated_;
  Tally tally_;
};

}  // namespace

std::vector<HostResult> RunTask(Executor& executor, const std::vector<const Host*>& hosts,
                                const Task& task, Reporter& reporter) {
  const auto t0 = std::chrono::steady_clock::now();
  reporter.OnStart(hosts.size());
  TaskRun run(hosts, task, reporter);
  executor.Run(hosts, task.op, run);
  auto results = run.TakeResults();
  reporter.OnFinish(results, std::chrono::duration_cast<std::chrono::milliseconds>(
                                 std::chrono::steady_clock::now() - t0));
  return results;
}

Outcome OutcomeFor(const CallEnd& end) {
  const bool answered = end.messages > 0;
  switch (end.status.code()) {
    case StatusCode::kOk:
      return Outcome::kOk;
    case StatusCode::kUnavailable:
      return answered ? Outcome::kCommandFailed : Outcome::kUnreachable;
    case StatusCode::kDeadlineExceeded:
      return answered ? Outcome::kTimeout : Outcome::kUnreachable;
    default:
      return Outcome::kRejected;
  }
}

HostResult OkResult(std::string summary, nlohmann::json data) {
  HostResult r;
  r.outcome = Outcome::kOk;
  r.summary = std::move(summary);
  r.data = std::move(data);
  return r;
}

HostResult ErrorResult(const CallEnd& end) {
  HostResult r;
  r.outcome = OutcomeFor(end);
  r.message = end.status.message();
  r.error_code = StatusCodeName(end.status.code());
  if (r.outcome == Outcome::kUnreachable && end.status.code() == StatusCode::kDeadlineExceeded) {
    r.message = "no answer before the deadline (--timeout)";
  }
  return r;
}

HostResult UnreadableResult(const CallEnd& end) {
  CallEnd bad = end;
  bad.status = Status::Internal("the agent's reply could not be read");
  return ErrorResult(bad);
}

Operation MakeOperation(const char* method, CallShape shape,
                        const google::protobuf::MessageLite& request,
                        std::chrono::milliseconds timeout) {
  Operation op;
  op.call.method = method;
  op.call.shape = shape;
  op.call.request = std::make_shared<const std::string>(request.SerializeAsString());
  op.call.timeout = timeout;
  return op;
}

}  // namespace herd::control

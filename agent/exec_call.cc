#include "agent/exec_call.h"

#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include <deque>
#include <mutex>

#include "common/text.h"
#include "proto/rpc/cq_tag.h"
#include "proto/rpc/status_map.h"

namespace herd::agent {
namespace {

using rpc::OpTag;

// Output held for a client that has not taken it: at most about this much
// per call (the runner stops reading the command), read again below kLowWater.
constexpr size_t kHighWater = 1 << 20;
constexpr size_t kLowWater = 256 << 10;

// A single argument, shell line or environment value: the kernel's own
// limit (MAX_ARG_STRLEN).
constexpr size_t kMaxArg = 128 * 1024;

// The command `req` asks for, within the agent's limits and the caller's
// deadline (`left`: what remains of it; huge when the caller set none), or
// why it is refused.
Result<ExecSpec> SpecFor(const v1::ExecRequest& req, const AgentConfig& config,
                         const Account& account, std::chrono::milliseconds left) {
  if (req.argv_size() == 0 && req.shell().empty()) return Status::Invalid("no command given");
  if (req.argv_size() > 0 && !req.shell().empty()) {
    return Status::Invalid("give either argv or shell, not both");
  }
  // What the kernel would cut short at a NUL byte or refuse for its size is
  // refused here, with a client error.
  if (req.argv_size() > 65536) return Status::Invalid("more than 65536 arguments");
  for (int i = 0; i < req.argv_size(); ++i) {
    if (Status s = CheckText(req.argv(i), "argv[" + std::to_string(i) + "]", kMaxArg); !s.ok()) {
      return s;
    }
  }
  if (!req.argv().empty() && req.argv(0).empty()) return Status::Invalid("argv[0] is empty");
  if (Status s = CheckText(req.shell(), "shell", kMaxArg); !s.ok()) return s;
  for (const auto& [k, v] : req.env()) {
    if (!IsEnvName(k)) {
      return Status::Invalid("environment variable name '" + Excerpt(k) +
                             "' is not a portable name (letters, digits, '_'; not a digit first)");
    }
    if (Status s = CheckText(v, "environment variable " + k, kMaxArg); !s.ok()) return s;
  }
  if (!req.working_dir().empty()) {
    if (Status s = CheckAbsolutePath(req.working_dir(), "working directory"); !s.ok()) return s;
  }
  ExecSpec spec;
  spec.argv.assign(req.argv().begin(), req.argv().end());
  spec.shell = req.shell();
  for (const auto& [k, v] : req.env()) spec.env[k] = v;
  spec.account = &account;
  struct stat home {};
  spec.cwd = !req.working_dir().empty()                                          ? req.working_dir()
             : ::stat(account.home.c_str(), &home) == 0 && S_ISDIR(home.st_mode) ? account.home
                                                                                 : "/";
  spec.stdin_data = req.stdin_data();
  spec.timeout =
      req.timeout_ms() ? std::chrono::milliseconds(req.timeout_ms()) : config.exec.default_timeout;
  spec.kill_grace = config.exec.kill_grace;
  spec.max_output_bytes =
      req.max_output_bytes() ? req.max_output_bytes() : config.exec.max_output_bytes;
  spec.max_output_bytes = std::min(spec.max_output_bytes, config.exec.max_output_bytes_limit);
  // The caller's deadline bounds timeout + kill grace, so a command that
  // ignores SIGTERM is still killed and reported before the caller gives up.
  // The grace is cut to a tenth of what is left, so SIGTERM still comes at
  // 80 % (2 s deadline) to 96 % (60 s) of the caller's deadline.
  const auto reply_margin = std::min(std::chrono::milliseconds(200), left / 10);
  if (left.count() > 0 && spec.timeout + spec.kill_grace + reply_margin > left) {
    const auto budget = std::max(left - reply_margin, std::chrono::milliseconds(2));
    spec.kill_grace = std::min(spec.kill_grace, budget / 10);
    spec.timeout = std::min(spec.timeout, budget - spec.kill_grace);
  }
  return spec;
}

// What the logs and the audit trail say about a command: program name and
// counts only (arguments, environment values and shell lines may hold secrets).
std::string Summary(const ExecSpec& spec) {
  std::string summary =
      spec.shell.empty()
          ? fmt::format("argv[0]={} args={}", Excerpt(spec.argv[0], 200), spec.argv.size() - 1)
          : fmt::format("shell ({} chars)", spec.shell.size());
  std::string env_keys;
  for (const auto& [k, v] : spec.env) env_keys += (env_keys.empty() ? "" : ",") + k;
  if (!env_keys.empty()) summary += " env=" + env_keys;
  return summary;
}

// Exec: streams one command's output, then its result. The runner's worker
// starts the writes itself; their completions come back on the serving
// thread. Freed once the call is over (the done notification) and its
// finishing operation has completed, which is never before the runner's
// final callback: Finish only starts after it (or when nothing ran).
class ExecCall final : public rpc::LiveCall {
 public:
  static void Arm(rpc::CallQueue& q, v1::Agent::AsyncService& async, AgentContext& c) {
    if (!q.draining()) new ExecCall(q, async, c);
  }

 private:
  ExecCall(rpc::CallQueue& q, v1::Agent::AsyncService& async, AgentContext& c)
      : LiveCall(q), async_(async), s_(c) {
    ctx_.AsyncNotifyWhenDone(&notified_);
    async.RequestExec(&ctx_, &req_, &writer_, q.cq(), q.cq(), &requested_);
  }

  void OnRequested(bool ok) {
    if (!ok || queue_.draining()) return;  // the server is shutting down: freed by the queue
    Arm(queue_, async_, s_);
    Begin();
  }

  // Validates the request and hands the command to the runner.
  void Begin() {
    auto who = Authorize(s_, ctx_, method::kExec);
    if (!who.ok()) return FinishNow(rpc::ToGrpc(who.status()));
    entry_ = EntryFor(*who, method::kExec);
    caller_serial_ = who->serial;
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        ctx_.deadline() - std::chrono::system_clock::now());
    auto account = ActingAccount(s_, req_.root());
    if (!account.ok()) {
      entry_.args = "root";
      entry_.result = "denied: " + account.status().message();
      (void)s_.audit.AppendRefusal(entry_, caller_serial_);
      return FinishNow(rpc::ToGrpc(account.status()));
    }
    auto spec = SpecFor(req_, s_.config, **account, left);
    if (!spec.ok()) return FinishNow(rpc::ToGrpc(spec.status()));
    std::string summary = Summary(*spec) + " as=" + (*account)->name;
    spdlog::info("exec {} for {} from {}", summary, who->name, ctx_.peer());
    entry_.args = std::move(summary);

    auto id = s_.runner.Start(
        std::move(*spec),
        [this](bool is_err, std::string data) {
          v1::ExecEvent ev;
          if (is_err) {
            ev.set_err(std::move(data));
          } else {
            ev.set_out(std::move(data));
          }
          return Push(std::move(ev));
        },
        [this](ExecOutcome o) { OnExecDone(std::move(o)); },
        [this] {
          // On record once admitted and before it runs: if the agent dies
          // mid-command, the trace stays. Not synced: the result line's fsync
          // covers both.
          AuditEntry started = entry_;
          started.result = "started";
          (void)s_.audit.Append(started, false);
        });
    if (!id.ok()) {
      spdlog::warn("exec refused: {}", id.status().message());
      entry_.result = "refused: " + id.status().message();
      (void)s_.audit.AppendRefusal(entry_, caller_serial_);
      return FinishNow(rpc::ToGrpc(id.status()));
    }
    std::lock_guard<std::mutex> l(mu_);
    id_ = *id;
    if (cancelled_) s_.runner.Cancel(id_);
    if (resume_when_known_) s_.runner.Resume(id_);
  }

  void OnWritten(bool ok) {
    std::lock_guard<std::mutex> l(mu_);
    queued_bytes_ -= Size(events_.front());
    events_.pop_front();
    if (!ok) {
      cancelled_ = true;
      events_.clear();
      queued_bytes_ = 0;
    }
    writing_ = false;
    // The client caught up: the command's output is read again.
    if (paused_ && queued_bytes_ <= kLowWater) {
      paused_ = false;
      if (id_) {
        s_.runner.Resume(id_);
      } else {
        resume_when_known_ = true;
      }
    }
    Pump();
  }

  static size_t Size(const v1::ExecEvent& ev) { return ev.out().size() + ev.err().size(); }

  // The call is over: finished, or cancelled by the caller (gone, deadline).
  void OnNotified(bool) {
    bool free_now;
    {
      std::lock_guard<std::mutex> l(mu_);
      notified_done_ = true;
      if (ctx_.IsCancelled()) {
        cancelled_ = true;
        if (id_) s_.runner.Cancel(id_);
      }
      free_now = finish_done_;
    }
    if (free_now) delete this;
  }

  void OnFinished(bool) {
    bool free_now;
    {
      std::lock_guard<std::mutex> l(mu_);
      finish_done_ = true;
      free_now = notified_done_;
    }
    if (free_now) delete this;
  }

  // Queues output for the client; false once it holds kHighWater bytes the
  // client has not taken (the runner then stops reading the command).
  bool Push(v1::ExecEvent ev) {
    std::lock_guard<std::mutex> l(mu_);
    if (cancelled_) return true;
    queued_bytes_ += Size(ev);
    events_.push_back(std::move(ev));
    Pump();
    if (queued_bytes_ < kHighWater) return true;
    paused_ = true;
    return false;
  }

  void OnExecDone(ExecOutcome o) {
    const char* result = !o.error.empty()                      ? "error"
                         : o.timed_out                         ? "timeout"
                         : (o.exit_code == 0 && o.signal == 0) ? "ok"
                                                               : "failed";
    s_.metrics.RecordExec(result, o.duration.count() / 1000.0);
    entry_.result = std::string(result) + (o.error.empty() ? "" : ": " + o.error) +
                    " exit=" + std::to_string(o.exit_code) +
                    (o.signal ? " signal=" + std::to_string(o.signal) : "");
    (void)s_.audit.Append(entry_);
    spdlog::debug("exec done: {} exit={} signal={} {} ms", result, o.exit_code, o.signal,
                  o.duration.count());
    v1::ExecEvent ev;
    auto* r = ev.mutable_result();
    r->set_exit_code(o.exit_code);
    r->set_signal(o.signal);
    r->set_timed_out(o.timed_out);
    r->set_output_truncated(o.truncated);
    r->set_duration_ms(o.duration.count());
    r->set_error(o.error);
    std::lock_guard<std::mutex> l(mu_);
    done_ = true;
    if (!cancelled_) events_.push_back(std::move(ev));
    Pump();
  }

  // Starts the next write, or finishes once the command is done and every
  // queued event is written. Called with mu_ held.
  void Pump() {
    if (writing_ || finished_ || queue_.draining()) return;
    if (done_ && events_.size() == 1 && !cancelled_) {
      // The result is the last event: one batch with the status, instead of
      // a write, its completion, and then Finish.
      finished_ = true;
      queue_.Finished(method::kExec, grpc::StatusCode::OK);
      writer_.WriteAndFinish(events_.front(), grpc::WriteOptions(), grpc::Status::OK,
                             &finished_tag_);
      return;
    }
    if (!events_.empty()) {
      writing_ = true;
      writer_.Write(events_.front(), &written_);
      return;
    }
    if (done_) FinishLocked(cancelled_ ? grpc::Status::CANCELLED : grpc::Status::OK);
  }

  void FinishNow(const grpc::Status& st) {
    std::lock_guard<std::mutex> l(mu_);
    FinishLocked(st);
  }
  void FinishLocked(const grpc::Status& st) {
    if (queue_.draining()) return;  // freed by the queue
    finished_ = true;
    queue_.Finished(method::kExec, st.error_code());
    writer_.Finish(st, &finished_tag_);
  }

  v1::Agent::AsyncService& async_;
  AgentContext& s_;
  grpc::ServerContext ctx_;
  v1::ExecRequest req_;
  grpc::ServerAsyncWriter<v1::ExecEvent> writer_{&ctx_};
  OpTag<ExecCall> requested_{this, &ExecCall::OnRequested};
  OpTag<ExecCall> written_{this, &ExecCall::OnWritten};
  OpTag<ExecCall> notified_{this, &ExecCall::OnNotified};
  OpTag<ExecCall> finished_tag_{this, &ExecCall::OnFinished};
  AuditEntry entry_;  // completed with the result, then appended
  std::string caller_serial_;
  std::mutex mu_;                     // guards everything below
  std::deque<v1::ExecEvent> events_;  // front is being written while writing_
  size_t queued_bytes_ = 0;           // output bytes in events_
  bool paused_ = false, resume_when_known_ = false;
  uint64_t id_ = 0;
  bool writing_ = false, done_ = false, cancelled_ = false, finished_ = false;
  bool notified_done_ = false, finish_done_ = false;
};

}  // namespace

void ArmExecCall(rpc::CallQueue& queue, v1::Agent::AsyncService& async, AgentContext& c) {
  ExecCall::Arm(queue, async, c);
}

}  // namespace herd::agent

#include "agent/service.h"

#include <grpcpp/grpcpp.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <atomic>
#include <climits>
#include <condition_variable>
#include <cstdlib>
#include <deque>
#include <mutex>
#include <set>
#include <thread>

#include "agent/file_writer.h"
#include "agent/host_info.h"
#include "cq_tag.h"
#include "herd/v1/agent.grpc.pb.h"

namespace herd::agent {

grpc::Status ToGrpc(const Status& s) {
  grpc::StatusCode c;
  switch (s.code()) {
    case StatusCode::kOk:
      return grpc::Status::OK;
    case StatusCode::kInvalidArgument:
      c = grpc::StatusCode::INVALID_ARGUMENT;
      break;
    case StatusCode::kNotFound:
      c = grpc::StatusCode::NOT_FOUND;
      break;
    case StatusCode::kAlreadyExists:
      c = grpc::StatusCode::ALREADY_EXISTS;
      break;
    case StatusCode::kPermissionDenied:
      c = grpc::StatusCode::PERMISSION_DENIED;
      break;
    case StatusCode::kUnauthenticated:
      c = grpc::StatusCode::UNAUTHENTICATED;
      break;
    case StatusCode::kFailedPrecondition:
      c = grpc::StatusCode::FAILED_PRECONDITION;
      break;
    case StatusCode::kResourceExhausted:
      c = grpc::StatusCode::RESOURCE_EXHAUSTED;
      break;
    case StatusCode::kUnavailable:
      c = grpc::StatusCode::UNAVAILABLE;
      break;
    case StatusCode::kDeadlineExceeded:
      c = grpc::StatusCode::DEADLINE_EXCEEDED;
      break;
    default:
      c = grpc::StatusCode::INTERNAL;
      break;
  }
  return grpc::Status(c, s.message());
}

namespace {

// One thread for the work that may block on the disk or on crypto, started
// at the first Post. At most kMaxQueued tasks wait; Post refuses more.
class SlowWorker {
 public:
  static constexpr size_t kMaxQueued = 64;

  bool Post(std::function<void()> fn) {
    std::lock_guard<std::mutex> l(mu_);
    if (stopped_ || queue_.size() >= kMaxQueued) return false;
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

class Call;

}  // namespace

struct AgentService::Impl {
  Impl(const AgentConfig& c, ExecRunner& r, AgentMetrics& m, Authorizer& a, AuditLog& au,
       Enrollment* e, std::function<void()> on)
      : config(c),
        runner(r),
        metrics(m),
        authz(a),
        audit(au),
        enrollment(e),
        on_enrolled(std::move(on)) {}

  // Asks for the next call of every method.
  void ArmAll();

  const AgentConfig& config;
  ExecRunner& runner;
  AgentMetrics& metrics;
  Authorizer& authz;
  AuditLog& audit;
  Enrollment* const enrollment;  // null in plain-text mode
  const std::function<void()> on_enrolled;
  const std::chrono::steady_clock::time_point started = std::chrono::steady_clock::now();

  v1::Agent::AsyncService async;
  std::unique_ptr<grpc::ServerCompletionQueue> cq;
  std::thread thread;
  // Set on the serving thread when the queue is shut down: from then on no
  // operation starts (a late completion of a call cancelled by the server's
  // shutdown must not start its next one); what is left is freed by Stop.
  // Read by the exec workers too, which have all finished by then.
  std::atomic<bool> draining{false};
  SlowWorker slow;
  // Every call object alive, so that Stop can free those whose operations
  // never complete (the requests pending when the server shut down).
  std::mutex live_mu;
  std::set<Call*> live;
};

namespace {

using Impl = AgentService::Impl;

// One call: its context, registered with the service while alive.
class Call {
 public:
  explicit Call(Impl& s) : s_(s) {
    std::lock_guard<std::mutex> l(s_.live_mu);
    s_.live.insert(this);
  }
  virtual ~Call() {
    std::lock_guard<std::mutex> l(s_.live_mu);
    s_.live.erase(this);
  }
  Call(const Call&) = delete;
  Call& operator=(const Call&) = delete;

 protected:
  Impl& s_;
  grpc::ServerContext ctx_;
};

AuditEntry EntryFor(const Caller& who, const char* method) {
  return {who.name, pki::RoleName(who.role), method, "", ""};
}

// A unary method: the handler fills the reply on the serving thread, or on
// the slow-work thread when `slow`. `after` runs once the reply is sent.
template <class Req, class Rep>
class UnaryCall final : public Call {
 public:
  using RequestFn = void (v1::Agent::AsyncService::*)(grpc::ServerContext*, Req*,
                                                      grpc::ServerAsyncResponseWriter<Rep>*,
                                                      grpc::CompletionQueue*,
                                                      grpc::ServerCompletionQueue*, void*);
  using Handler = grpc::Status (*)(Impl&, UnaryCall&);
  struct Method {
    const char* name;
    RequestFn request;
    Handler handler;
    bool slow;
  };

  static void Arm(Impl& s, const Method& m) {
    if (!s.draining) new UnaryCall(s, m);
  }

  grpc::ServerContext& ctx() { return ctx_; }
  Req req;
  Rep reply;
  std::function<void()> after;

 private:
  UnaryCall(Impl& s, const Method& m) : Call(s), m_(m) {
    (s.async.*m.request)(&ctx_, &req, &writer_, s.cq.get(), s.cq.get(), &requested_);
  }
  void OnRequested(bool ok) {
    if (!ok || s_.draining) return;  // the server is shutting down: freed by Stop
    Arm(s_, m_);
    if (!m_.slow) return Run();
    if (!s_.slow.Post([this] { Run(); })) {
      Finish(grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                          "the agent is busy: too many slow calls queued"));
    }
  }
  void Run() { Finish(m_.handler(s_, *this)); }
  void Finish(const grpc::Status& st) {
    if (s_.draining) return;  // freed by Stop
    s_.metrics.RecordRpc(m_.name, static_cast<int>(st.error_code()));
    writer_.Finish(reply, st, &finished_);
  }
  void OnFinished(bool) {
    if (after) after();
    delete this;
  }

  const Method& m_;
  grpc::ServerAsyncResponseWriter<Rep> writer_{&ctx_};
  OpTag<UnaryCall> requested_{this, &UnaryCall::OnRequested};
  OpTag<UnaryCall> finished_{this, &UnaryCall::OnFinished};
};

// Runs `fn` for an authorised caller; refusals are answered as they are.
template <class Call, class Fn>
grpc::Status Authorized(Impl& s, Call& call, const char* method, Fn&& fn) {
  auto who = s.authz.Check(call.ctx(), method);
  return who.ok() ? fn(*who) : ToGrpc(who.status());
}

grpc::Status Info(Impl& s, UnaryCall<v1::InfoRequest, v1::InfoReply>& call) {
  return Authorized(s, call, "Info", [&](const Caller&) {
    auto* reply = &call.reply;
    reply->set_hostname(HostName());
    reply->set_agent_version(HERD_VERSION);
    reply->set_name(s.config.name);
    reply->set_uptime_seconds(std::chrono::duration_cast<std::chrono::seconds>(
                                  std::chrono::steady_clock::now() - s.started)
                                  .count());
    for (const auto& [k, v] : s.config.labels) (*reply->mutable_labels())[k] = v;
    return grpc::Status::OK;
  });
}

grpc::Status Facts(Impl& s, UnaryCall<v1::FactsRequest, v1::FactsReply>& call) {
  return Authorized(s, call, "Facts", [&](const Caller&) {
    auto* reply = &call.reply;
    HostFacts f = ReadHostFacts(s.config.state_dir);
    reply->set_hostname(f.hostname);
    reply->set_os(f.os);
    reply->set_kernel(f.kernel);
    reply->set_arch(f.arch);
    reply->set_cpus(f.cpus);
    reply->set_memory_total_bytes(f.mem_total);
    reply->set_memory_available_bytes(f.mem_available);
    reply->set_disk_total_bytes(f.disk_total);
    reply->set_disk_available_bytes(f.disk_available);
    reply->set_uptime_seconds(static_cast<int64_t>(f.uptime));
    reply->set_load1(f.load1);
    reply->set_agent_version(HERD_VERSION);
    reply->set_name(s.config.name);
    for (const auto& [k, v] : s.config.labels) (*reply->mutable_labels())[k] = v;
    return grpc::Status::OK;
  });
}

grpc::Status Health(Impl& s, UnaryCall<v1::HealthRequest, v1::HealthReply>& call) {
  return Authorized(s, call, "Health", [&](const Caller&) {
    bool ok = true;
    for (const auto& c : RunHealthChecks(s.config.state_dir, s.config.health)) {
      auto* hc = call.reply.add_checks();
      hc->set_name(c.name);
      hc->set_ok(c.ok);
      hc->set_detail(c.detail);
      ok = ok && c.ok;
    }
    call.reply.set_ok(ok);
    return grpc::Status::OK;
  });
}

grpc::Status ReadAudit(Impl& s, UnaryCall<v1::ReadAuditRequest, v1::ReadAuditReply>& call) {
  return Authorized(s, call, "ReadAudit", [&](const Caller&) {
    const auto& req = call.req;
    for (auto& e : s.audit.Read(req.since_unix(), req.limit() ? req.limit() : 1000)) {
      call.reply.add_entries(std::move(e));
    }
    return grpc::Status::OK;
  });
}

grpc::Status SetRevocations(Impl& s,
                            UnaryCall<v1::SetRevocationsRequest, v1::SetRevocationsReply>& call) {
  return Authorized(s, call, "SetRevocations", [&](const Caller& who) {
    std::set<std::string> serials;
    for (const auto& serial : call.req.serials()) {
      if (!Authorizer::IsSerial(serial)) {
        return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                            "serial '" + serial.substr(0, 64) + "' is not upper-case hex");
      }
      serials.insert(serial);
    }
    Status st = s.authz.SetRevoked(serials);
    AuditEntry e = EntryFor(who, "SetRevocations");
    e.args = std::to_string(serials.size()) + " serials";
    e.result = st.ok() ? "ok" : "failed: " + st.message();
    (void)s.audit.Append(e);
    spdlog::info("revocation list replaced by {}: {} serials", who.name, serials.size());
    call.reply.set_count(static_cast<uint32_t>(serials.size()));
    return ToGrpc(st);
  });
}

// Audits an enrolment call's outcome (never the token, proofs or PEM bodies)
// and maps the status. Successes are audited when they change something.
grpc::Status FinishEnroll(AuditLog& audit, const Caller& who, const char* method,
                          const std::string& args, const Status& s, bool mutated) {
  AuditEntry e{who.name, who.join_token ? "join-token" : pki::RoleName(who.role), method, args,
               s.ok() ? "ok" : "denied: " + s.message()};
  if (!s.ok() && who.join_token) {
    (void)audit.AppendAnonymous(std::move(e));
  } else if (!s.ok() || mutated) {
    (void)audit.Append(e);
  }
  return ToGrpc(s);
}

// The common start of both enrolment calls: authorisation, then the
// plain-text agent's refusal; `fn` runs for a caller that may go on.
template <class Call, class Fn>
grpc::Status Enrolling(Impl& s, Call& call, const char* method, Fn&& fn) {
  return Authorized(s, call, method, [&](const Caller& who) {
    if (!s.enrollment) {
      Status refused(StatusCode::kFailedPrecondition,
                     "this agent serves plain text: there is nothing to enrol");
      return FinishEnroll(s.audit, who, method, "", refused, false);
    }
    return fn(who);
  });
}

grpc::Status BeginEnroll(Impl& s, UnaryCall<v1::BeginEnrollRequest, v1::BeginEnrollReply>& call) {
  return Enrolling(s, call, "BeginEnroll", [&](const Caller& who) {
    const auto& req = call.req;
    auto hello = s.enrollment->Begin(req.client_nonce(), req.client_proof(), !who.join_token);
    if (hello.ok()) {
      auto* reply = &call.reply;
      reply->set_agent_nonce(hello->agent_nonce);
      reply->set_public_key_pem(hello->public_key_pem);
      reply->set_agent_proof(hello->agent_proof);
      reply->set_hostname(HostName());
      reply->set_enrolled(hello->enrolled);
    }
    return FinishEnroll(s.audit, who, "BeginEnroll", "", hello.status(), false);
  });
}

grpc::Status CompleteEnroll(Impl& s,
                            UnaryCall<v1::CompleteEnrollRequest, v1::CompleteEnrollReply>& call) {
  return Enrolling(s, call, "CompleteEnroll", [&](const Caller& who) {
    const auto& req = call.req;
    auto done = s.enrollment->Complete(req.agent_nonce(), req.certificate_pem(), req.ca_pem(),
                                       req.proof(), !who.join_token);
    if (!done.ok()) {
      return FinishEnroll(s.audit, who, "CompleteEnroll", "", done.status(), false);
    }
    // A first enrolment is served at once (the listener restarts after this
    // reply); a renewal within tls.reload_interval, without cutting calls.
    const auto reload =
        done->renewal
            ? std::chrono::duration_cast<std::chrono::seconds>(s.config.tls_reload).count()
            : 0;
    if (!done->renewal) call.after = s.on_enrolled;
    call.reply.set_serial(done->cert.serial);
    call.reply.set_not_after_unix(done->cert.not_after);
    call.reply.set_reload_seconds(static_cast<uint32_t>(reload));
    const std::string args =
        fmt::format("{} name={} serial={}", done->renewal ? "renewed" : "enrolled",
                    done->cert.common_name, done->cert.serial);
    spdlog::info("certificate {} by {}: serving it within {} s", args, who.name, reload);
    return FinishEnroll(s.audit, who, "CompleteEnroll", args, Status::Ok(), true);
  });
}

// Exec: streams one command's output, then its result. The runner's worker
// starts the writes itself; their completions come back on the serving
// thread. Freed once the call is over (the done notification) and its
// finishing operation has completed, which is never before the runner's
// final callback: Finish only starts after it (or when nothing ran).
class ExecCall final : public Call {
 public:
  static void Arm(Impl& s) {
    if (!s.draining) new ExecCall(s);
  }

 private:
  explicit ExecCall(Impl& s) : Call(s) {
    ctx_.AsyncNotifyWhenDone(&notified_);
    s.async.RequestExec(&ctx_, &req_, &writer_, s.cq.get(), s.cq.get(), &requested_);
  }

  void OnRequested(bool ok) {
    if (!ok || s_.draining) return;  // the server is shutting down: freed by Stop
    Arm(s_);
    Begin();
  }

  // Validates the request and hands the command to the runner.
  void Begin() {
    auto who = s_.authz.Check(ctx_, "Exec");
    if (!who.ok()) return FinishNow(ToGrpc(who.status()));
    entry_ = EntryFor(*who, "Exec");
    const auto& req = req_;
    if (req.argv_size() == 0 && req.shell().empty()) {
      return FinishNow(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "no command given"));
    }
    if (req.argv_size() > 0 && !req.shell().empty()) {
      return FinishNow(
          grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "give either argv or shell, not both"));
    }
    const AgentConfig& config = s_.config;
    ExecSpec spec;
    spec.argv.assign(req.argv().begin(), req.argv().end());
    spec.shell = req.shell();
    for (const auto& [k, v] : req.env()) spec.env[k] = v;
    spec.cwd = req.working_dir().empty() ? config.state_dir : req.working_dir();
    spec.stdin_data = req.stdin_data();
    spec.timeout = req.timeout_ms() ? std::chrono::milliseconds(req.timeout_ms())
                                    : config.exec.default_timeout;
    spec.kill_grace = config.exec.kill_grace;
    spec.max_output_bytes =
        req.max_output_bytes() ? req.max_output_bytes() : config.exec.max_output_bytes;
    spec.max_output_bytes = std::min(spec.max_output_bytes, config.exec.max_output_bytes_limit);
    // The caller's deadline bounds timeout + kill grace, so a command that
    // ignores SIGTERM is still killed and reported before the caller gives up.
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        ctx_.deadline() - std::chrono::system_clock::now());
    // The grace is cut to a tenth of what is left, so SIGTERM still comes at
    // 80 % (2 s deadline) to 96 % (60 s) of the caller's deadline.
    const auto reply_margin = std::min(std::chrono::milliseconds(200), left / 10);
    if (left.count() > 0 && spec.timeout + spec.kill_grace + reply_margin > left) {
      const auto budget = std::max(left - reply_margin, std::chrono::milliseconds(2));
      spec.kill_grace = std::min(spec.kill_grace, budget / 10);
      spec.timeout = std::min(spec.timeout, budget - spec.kill_grace);
    }
    // Program name and counts only: arguments, environment values and shell
    // lines may hold secrets.
    std::string summary =
        spec.shell.empty() ? fmt::format("argv[0]={} args={}", spec.argv[0], spec.argv.size() - 1)
                           : fmt::format("shell ({} chars)", spec.shell.size());
    std::string env_keys;
    for (const auto& [k, v] : spec.env) env_keys += (env_keys.empty() ? "" : ",") + k;
    if (!env_keys.empty()) summary += " env=" + env_keys;
    spdlog::info("exec {} for {} from {}", summary, who->name, ctx_.peer());
    entry_.args = std::move(summary);

    auto id = s_.runner.Start(
        std::move(spec),
        [this](bool is_err, std::string data) {
          v1::ExecEvent ev;
          if (is_err) {
            ev.set_err(std::move(data));
          } else {
            ev.set_out(std::move(data));
          }
          Push(std::move(ev));
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
      (void)s_.audit.Append(entry_);
      return FinishNow(ToGrpc(id.status()));
    }
    std::lock_guard<std::mutex> l(mu_);
    id_ = *id;
    if (cancelled_) s_.runner.Cancel(id_);
  }

  void OnWritten(bool ok) {
    std::lock_guard<std::mutex> l(mu_);
    queue_.pop_front();
    if (!ok) {
      cancelled_ = true;
      queue_.clear();
    }
    writing_ = false;
    Pump();
  }

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

  void Push(v1::ExecEvent ev) {
    std::lock_guard<std::mutex> l(mu_);
    if (cancelled_) return;
    queue_.push_back(std::move(ev));
    Pump();
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
    if (!cancelled_) queue_.push_back(std::move(ev));
    Pump();
  }

  // Starts the next write, or finishes once the command is done and every
  // queued event is written. Called with mu_ held.
  void Pump() {
    if (writing_ || finished_ || s_.draining) return;
    if (done_ && queue_.size() == 1 && !cancelled_) {
      // The result is the last event: one batch with the status, instead of
      // a write, its completion, and then Finish.
      finished_ = true;
      s_.metrics.RecordRpc("Exec", 0);
      writer_.WriteAndFinish(queue_.front(), grpc::WriteOptions(), grpc::Status::OK,
                             &finished_tag_);
      return;
    }
    if (!queue_.empty()) {
      writing_ = true;
      writer_.Write(queue_.front(), &written_);
      return;
    }
    if (done_) FinishLocked(cancelled_ ? grpc::Status::CANCELLED : grpc::Status::OK);
  }

  void FinishNow(const grpc::Status& st) {
    std::lock_guard<std::mutex> l(mu_);
    FinishLocked(st);
  }
  void FinishLocked(const grpc::Status& st) {
    if (s_.draining) return;  // freed by Stop
    finished_ = true;
    s_.metrics.RecordRpc("Exec", static_cast<int>(st.error_code()));
    writer_.Finish(st, &finished_tag_);
  }

  v1::ExecRequest req_;
  grpc::ServerAsyncWriter<v1::ExecEvent> writer_{&ctx_};
  OpTag<ExecCall> requested_{this, &ExecCall::OnRequested};
  OpTag<ExecCall> written_{this, &ExecCall::OnWritten};
  OpTag<ExecCall> notified_{this, &ExecCall::OnNotified};
  OpTag<ExecCall> finished_tag_{this, &ExecCall::OnFinished};
  AuditEntry entry_;                 // completed with the result, then appended
  std::mutex mu_;                    // guards everything below
  std::deque<v1::ExecEvent> queue_;  // front is being written while writing_
  uint64_t id_ = 0;
  bool writing_ = false, done_ = false, cancelled_ = false, finished_ = false;
  bool notified_done_ = false, finish_done_ = false;
};

// PutFile: reads the header and the chunks on the serving thread; the
// commit (fsync, rename) runs on the slow-work thread.
class PutFileCall final : public Call {
 public:
  static void Arm(Impl& s) {
    if (!s.draining) new PutFileCall(s);
  }

 private:
  explicit PutFileCall(Impl& s) : Call(s) {
    s.async.RequestPutFile(&ctx_, &reader_, s.cq.get(), s.cq.get(), &requested_);
  }

  void OnRequested(bool ok) {
    if (!ok || s_.draining) return;  // the server is shutting down: freed by Stop
    Arm(s_);
    auto who = s_.authz.Check(ctx_, "PutFile");
    if (!who.ok()) return Finish(ToGrpc(who.status()));  // refused at once: nothing is read
    entry_ = EntryFor(*who, "PutFile");
    ReadNext();
  }

  void OnRead(bool ok) {
    if (!ok) {
      // The caller is done sending (or gone: then the size or checksum fails).
      if (!s_.slow.Post([this] { Complete(); })) {
        Fail(Status(StatusCode::kResourceExhausted, "the agent is busy: too many slow calls"));
      }
      return;
    }
    if (msg_.has_header()) {
      if (writer_) return Fail(Status::Invalid("header sent twice"));
      const auto& h = msg_.header();
      entry_.args = fmt::format("path={} size={} mode={:04o} sha256={}", h.path(), h.size(),
                                h.mode(), h.sha256());
      if (InsideDir(h.path(), s_.config.state_dir)) {
        return Fail(Status(StatusCode::kPermissionDenied,
                           "refusing to write " + h.path() +
                               ": it is in the agent's state directory (audit log, keys)"));
      }
      auto w = AtomicFileWriter::Open(h.path(), h.mode(), h.size(), h.sha256());
      if (!w.ok()) return Fail(w.status());
      writer_ = std::move(*w);
    } else if (msg_.has_chunk()) {
      if (!writer_) return Fail(Status::Invalid("data before the header"));
      Status s = writer_->Write(msg_.chunk());
      if (!s.ok()) return Fail(s);
    }
    ReadNext();
  }

  void ReadNext() {
    if (!s_.draining) reader_.Read(&msg_, &read_);  // else freed by Stop
  }

  void Complete() {
    if (!writer_) return Fail(Status::Invalid("no header received"));
    Status s = writer_->Commit();
    if (!s.ok()) return Fail(s);
    spdlog::info("put file {} ({} bytes) from {}", writer_->path(), writer_->written(),
                 ctx_.peer());
    reply_.set_bytes_written(writer_->written());
    reply_.set_sha256(writer_->sha256());
    entry_.result = "ok";
    (void)s_.audit.Append(entry_);
    Finish(grpc::Status::OK);
  }

  void Fail(const Status& s) {
    spdlog::warn("put file {} failed: {}", writer_ ? writer_->path() : "?", s.message());
    writer_.reset();  // removes the temporary
    entry_.result = "failed: " + s.message();
    (void)s_.audit.Append(entry_);
    Finish(ToGrpc(s));
  }

  void Finish(const grpc::Status& st) {
    if (s_.draining) return;  // freed by Stop
    s_.metrics.RecordRpc("PutFile", static_cast<int>(st.error_code()));
    if (st.ok()) {
      reader_.Finish(reply_, st, &finished_);
    } else {
      reader_.FinishWithError(st, &finished_);
    }
  }
  void OnFinished(bool) { delete this; }

  // True when `path`'s folder, symlinks resolved, is `dir` or below it.
  static bool InsideDir(const std::string& path, const std::string& dir) {
    const std::string parent = path.substr(0, path.rfind('/'));
    char a[PATH_MAX], b[PATH_MAX];
    if (!::realpath(parent.empty() ? "/" : parent.c_str(), a) || !::realpath(dir.c_str(), b)) {
      return false;
    }
    const std::string p(a), d(b);
    return p == d || p.rfind(d + "/", 0) == 0;
  }

  grpc::ServerAsyncReader<v1::PutFileReply, v1::PutFileMessage> reader_{&ctx_};
  OpTag<PutFileCall> requested_{this, &PutFileCall::OnRequested};
  OpTag<PutFileCall> read_{this, &PutFileCall::OnRead};
  OpTag<PutFileCall> finished_{this, &PutFileCall::OnFinished};
  AuditEntry entry_;
  v1::PutFileMessage msg_;
  v1::PutFileReply reply_;
  std::unique_ptr<AtomicFileWriter> writer_;
};

template <class Req, class Rep>
using Method = typename UnaryCall<Req, Rep>::Method;
using A = v1::Agent::AsyncService;

const Method<v1::InfoRequest, v1::InfoReply> kInfo{"Info", &A::RequestInfo, &Info, false};
const Method<v1::FactsRequest, v1::FactsReply> kFacts{"Facts", &A::RequestFacts, &Facts, false};
const Method<v1::HealthRequest, v1::HealthReply> kHealth{"Health", &A::RequestHealth, &Health,
                                                         false};
const Method<v1::ReadAuditRequest, v1::ReadAuditReply> kReadAudit{"ReadAudit", &A::RequestReadAudit,
                                                                  &ReadAudit, true};
const Method<v1::SetRevocationsRequest, v1::SetRevocationsReply> kSetRevocations{
    "SetRevocations", &A::RequestSetRevocations, &SetRevocations, true};
const Method<v1::BeginEnrollRequest, v1::BeginEnrollReply> kBeginEnroll{
    "BeginEnroll", &A::RequestBeginEnroll, &BeginEnroll, true};
const Method<v1::CompleteEnrollRequest, v1::CompleteEnrollReply> kCompleteEnroll{
    "CompleteEnroll", &A::RequestCompleteEnroll, &CompleteEnroll, true};

}  // namespace

void AgentService::Impl::ArmAll() {
  UnaryCall<v1::InfoRequest, v1::InfoReply>::Arm(*this, kInfo);
  UnaryCall<v1::FactsRequest, v1::FactsReply>::Arm(*this, kFacts);
  UnaryCall<v1::HealthRequest, v1::HealthReply>::Arm(*this, kHealth);
  UnaryCall<v1::ReadAuditRequest, v1::ReadAuditReply>::Arm(*this, kReadAudit);
  UnaryCall<v1::SetRevocationsRequest, v1::SetRevocationsReply>::Arm(*this, kSetRevocations);
  UnaryCall<v1::BeginEnrollRequest, v1::BeginEnrollReply>::Arm(*this, kBeginEnroll);
  UnaryCall<v1::CompleteEnrollRequest, v1::CompleteEnrollReply>::Arm(*this, kCompleteEnroll);
  ExecCall::Arm(*this);
  PutFileCall::Arm(*this);
}

AgentService::AgentService(const AgentConfig& config, ExecRunner& runner, AgentMetrics& metrics,
                           Authorizer& authz, AuditLog& audit, Enrollment* enrollment,
                           std::function<void()> on_enrolled)
    : impl_(std::make_unique<Impl>(config, runner, metrics, authz, audit, enrollment,
                                   std::move(on_enrolled))) {}

AgentService::~AgentService() { Stop(); }

void AgentService::Register(grpc::ServerBuilder& builder) {
  builder.RegisterService(&impl_->async);
  impl_->cq = builder.AddCompletionQueue();
}

void AgentService::Start() {
  impl_->ArmAll();
  impl_->thread = std::thread([this] { ServeQueue(*impl_->cq); });
}

void AgentService::Stop() {
  if (!impl_->thread.joinable()) return;
  impl_->slow.Stop();
  StopQueue(*impl_->cq, impl_->thread, [this] { impl_->draining = true; });
  // What is left waits for operations that will never complete.
  std::set<Call*> left;
  {
    std::lock_guard<std::mutex> l(impl_->live_mu);
    left.swap(impl_->live);
  }
  for (Call* c : left) delete c;
}

}  // namespace herd::agent

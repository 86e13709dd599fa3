#include "agent/service.h"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <climits>
#include <cstdlib>
#include <deque>
#include <mutex>
#include <set>

#include "agent/file_writer.h"
#include "agent/host_info.h"

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

std::string Peer(grpc::CallbackServerContext* ctx) { return ctx->peer(); }

// Streams one command's output, then its result. Deleted in OnDone, which
// cannot happen before the runner's final callback: Finish is only called
// after it (or when the command never started).
class ExecReactor : public grpc::ServerWriteReactor<v1::ExecEvent> {
 public:
  ExecReactor(ExecRunner& runner, AgentMetrics& metrics, AuditLog& audit, AuditEntry entry)
      : runner_(runner), metrics_(metrics), audit_(audit), entry_(std::move(entry)) {}

  void Start(ExecSpec spec) {
    auto id = runner_.Start(
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
          (void)audit_.Append(started, false);
        });
    if (!id.ok()) {
      spdlog::warn("exec refused: {}", id.status().message());
      entry_.result = "refused: " + id.status().message();
      (void)audit_.Append(entry_);
      Finish(ToGrpc(id.status()));
      return;
    }
    std::lock_guard<std::mutex> l(mu_);
    id_ = *id;
    if (cancelled_) runner_.Cancel(id_);
  }

  void SetArgs(std::string args) { entry_.args = std::move(args); }

  void OnWriteDone(bool ok) override {
    std::lock_guard<std::mutex> l(mu_);
    queue_.pop_front();
    if (!ok) {
      cancelled_ = true;
      queue_.clear();
    }
    writing_ = false;
    Pump();
  }

  void OnCancel() override {
    std::lock_guard<std::mutex> l(mu_);
    cancelled_ = true;
    if (id_) runner_.Cancel(id_);
  }

  void OnDone() override { delete this; }

 private:
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
    metrics_.RecordExec(result, o.duration.count() / 1000.0);
    entry_.result = std::string(result) + (o.error.empty() ? "" : ": " + o.error) +
                    " exit=" + std::to_string(o.exit_code) +
                    (o.signal ? " signal=" + std::to_string(o.signal) : "");
    (void)audit_.Append(entry_);
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
    if (writing_ || finished_) return;
    if (done_ && queue_.size() == 1 && !cancelled_) {
      // The result is the last event: one batch with the status, instead of
      // a write, its completion, and then Finish. It stays queued until OnDone.
      finished_ = true;
      StartWriteAndFinish(&queue_.front(), grpc::WriteOptions(), grpc::Status::OK);
      return;
    }
    if (!queue_.empty()) {
      writing_ = true;
      StartWrite(&queue_.front());
      return;
    }
    if (done_) {
      finished_ = true;
      Finish(cancelled_ ? grpc::Status::CANCELLED : grpc::Status::OK);
    }
  }

  ExecRunner& runner_;
  AgentMetrics& metrics_;
  AuditLog& audit_;
  AuditEntry entry_;                 // completed with the result, then appended
  std::mutex mu_;                    // guards everything below
  std::deque<v1::ExecEvent> queue_;  // front is being written while writing_
  uint64_t id_ = 0;
  bool writing_ = false, done_ = false, cancelled_ = false, finished_ = false;
};

class PutFileReactor : public grpc::ServerReadReactor<v1::PutFileMessage> {
 public:
  PutFileReactor(v1::PutFileReply* reply, std::string peer, AuditLog& audit, AuditEntry entry,
                 std::string state_dir)
      : reply_(reply),
        peer_(std::move(peer)),
        audit_(audit),
        entry_(std::move(entry)),
        state_dir_(std::move(state_dir)) {
    StartRead(&msg_);
  }

  void OnReadDone(bool ok) override {
    if (!ok) return Complete();
    if (msg_.has_header()) {
      if (writer_) return Fail(Status::Invalid("header sent twice"));
      const auto& h = msg_.header();
      entry_.args = fmt::format("path={} size={} mode={:04o} sha256={}", h.path(), h.size(),
                                h.mode(), h.sha256());
      if (InsideDir(h.path(), state_dir_)) {
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
    StartRead(&msg_);
  }

  void OnDone() override { delete this; }

 private:
  void Complete() {
    if (!writer_) return Fail(Status::Invalid("no header received"));
    Status s = writer_->Commit();
    if (!s.ok()) return Fail(s);
    spdlog::info("put file {} ({} bytes) from {}", writer_->path(), writer_->written(), peer_);
    reply_->set_bytes_written(writer_->written());
    reply_->set_sha256(writer_->sha256());
    entry_.result = "ok";
    (void)audit_.Append(entry_);
    Finish(grpc::Status::OK);
  }
  void Fail(const Status& s) {
    spdlog::warn("put file {} failed: {}", writer_ ? writer_->path() : "?", s.message());
    writer_.reset();  // removes the temporary
    entry_.result = "failed: " + s.message();
    (void)audit_.Append(entry_);
    Finish(ToGrpc(s));
  }

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

  v1::PutFileReply* reply_;
  std::string peer_;
  AuditLog& audit_;
  AuditEntry entry_;
  v1::PutFileMessage msg_;
  std::unique_ptr<AtomicFileWriter> writer_;
  const std::string state_dir_;
};

template <typename Fn>
grpc::ServerUnaryReactor* Unary(Authorizer& authz, grpc::CallbackServerContext* ctx,
                                const char* method, Fn&& fn) {
  auto* reactor = ctx->DefaultReactor();
  auto who = authz.Check(*ctx, method);
  reactor->Finish(who.ok() ? fn() : ToGrpc(who.status()));
  return reactor;
}

AuditEntry EntryFor(const Caller& who, const char* method) {
  return {who.name, pki::RoleName(who.role), method, "", ""};
}

}  // namespace

AgentService::AgentService(const AgentConfig& config, ExecRunner& runner, AgentMetrics& metrics,
                           Authorizer& authz, AuditLog& audit, Enrollment* enrollment,
                           std::function<void()> on_enrolled)
    : config_(config),
      runner_(runner),
      metrics_(metrics),
      authz_(authz),
      audit_(audit),
      enrollment_(enrollment),
      on_enrolled_(std::move(on_enrolled)) {}

grpc::ServerUnaryReactor* AgentService::Info(grpc::CallbackServerContext* ctx,
                                             const v1::InfoRequest*, v1::InfoReply* reply) {
  return Unary(authz_, ctx, "Info", [&] {
    reply->set_hostname(HostName());
    reply->set_agent_version(HERD_VERSION);
    reply->set_name(config_.name);
    reply->set_uptime_seconds(std::chrono::duration_cast<std::chrono::seconds>(
                                  std::chrono::steady_clock::now() - started_)
                                  .count());
    for (const auto& [k, v] : config_.labels) (*reply->mutable_labels())[k] = v;
    return grpc::Status::OK;
  });
}

grpc::ServerUnaryReactor* AgentService::Facts(grpc::CallbackServerContext* ctx,
                                              const v1::FactsRequest*, v1::FactsReply* reply) {
  return Unary(authz_, ctx, "Facts", [&] {
    HostFacts f = ReadHostFacts(config_.state_dir);
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
    reply->set_name(config_.name);
    for (const auto& [k, v] : config_.labels) (*reply->mutable_labels())[k] = v;
    return grpc::Status::OK;
  });
}

grpc::ServerUnaryReactor* AgentService::Health(grpc::CallbackServerContext* ctx,
                                               const v1::HealthRequest*, v1::HealthReply* reply) {
  return Unary(authz_, ctx, "Health", [&] {
    bool ok = true;
    for (const auto& c : RunHealthChecks(config_.state_dir, config_.health)) {
      auto* hc = reply->add_checks();
      hc->set_name(c.name);
      hc->set_ok(c.ok);
      hc->set_detail(c.detail);
      ok = ok && c.ok;
    }
    reply->set_ok(ok);
    return grpc::Status::OK;
  });
}

grpc::ServerWriteReactor<v1::ExecEvent>* AgentService::Exec(grpc::CallbackServerContext* ctx,
                                                            const v1::ExecRequest* req) {
  auto who = authz_.Check(*ctx, "Exec");
  auto* reactor =
      new ExecReactor(runner_, metrics_, audit_, who.ok() ? EntryFor(*who, "Exec") : AuditEntry{});
  if (!who.ok()) {
    reactor->Finish(ToGrpc(who.status()));
    return reactor;
  }
  if (req->argv_size() == 0 && req->shell().empty()) {
    reactor->Finish(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "no command given"));
    return reactor;
  }
  if (req->argv_size() > 0 && !req->shell().empty()) {
    reactor->Finish(
        grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "give either argv or shell, not both"));
    return reactor;
  }
  ExecSpec spec;
  spec.argv.assign(req->argv().begin(), req->argv().end());
  spec.shell = req->shell();
  for (const auto& [k, v] : req->env()) spec.env[k] = v;
  spec.cwd = req->working_dir().empty() ? config_.state_dir : req->working_dir();
  spec.stdin_data = req->stdin_data();
  spec.timeout = req->timeout_ms() ? std::chrono::milliseconds(req->timeout_ms())
                                   : config_.exec.default_timeout;
  spec.kill_grace = config_.exec.kill_grace;
  spec.max_output_bytes =
      req->max_output_bytes() ? req->max_output_bytes() : config_.exec.max_output_bytes;
  spec.max_output_bytes = std::min(spec.max_output_bytes, config_.exec.max_output_bytes_limit);
  // The caller's deadline bounds timeout + kill grace, so a command that
  // ignores SIGTERM is still killed and reported before the caller gives up.
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
      ctx->deadline() - std::chrono::system_clock::now());
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
  std::string summary = spec.shell.empty()
                            ? fmt::format("argv[0]={} args={}", spec.argv[0], spec.argv.size() - 1)
                            : fmt::format("shell ({} chars)", spec.shell.size());
  std::string env_keys;
  for (const auto& [k, v] : spec.env) env_keys += (env_keys.empty() ? "" : ",") + k;
  if (!env_keys.empty()) summary += " env=" + env_keys;
  spdlog::info("exec {} for {} from {}", summary, who->name, Peer(ctx));
  reactor->SetArgs(summary);
  reactor->Start(std::move(spec));
  return reactor;
}

grpc::ServerReadReactor<v1::PutFileMessage>* AgentService::PutFile(grpc::CallbackServerContext* ctx,
                                                                   v1::PutFileReply* reply) {
  auto who = authz_.Check(*ctx, "PutFile");
  if (!who.ok()) {
    // A reactor that refuses at once: no message is read.
    class Refused : public grpc::ServerReadReactor<v1::PutFileMessage> {
     public:
      explicit Refused(const grpc::Status& s) { Finish(s); }
      void OnDone() override { delete this; }
    };
    return new Refused(ToGrpc(who.status()));
  }
  return new PutFileReactor(reply, Peer(ctx), audit_, EntryFor(*who, "PutFile"), config_.state_dir);
}

grpc::ServerUnaryReactor* AgentService::ReadAudit(grpc::CallbackServerContext* ctx,
                                                  const v1::ReadAuditRequest* req,
                                                  v1::ReadAuditReply* reply) {
  return Unary(authz_, ctx, "ReadAudit", [&] {
    for (auto& e : audit_.Read(req->since_unix(), req->limit() ? req->limit() : 1000)) {
      reply->add_entries(std::move(e));
    }
    return grpc::Status::OK;
  });
}

grpc::ServerUnaryReactor* AgentService::SetRevocations(grpc::CallbackServerContext* ctx,
                                                       const v1::SetRevocationsRequest* req,
                                                       v1::SetRevocationsReply* reply) {
  auto* reactor = ctx->DefaultReactor();
  auto who = authz_.Check(*ctx, "SetRevocations");
  if (!who.ok()) {
    reactor->Finish(ToGrpc(who.status()));
    return reactor;
  }
  std::set<std::string> serials;
  for (const auto& s : req->serials()) {
    if (!Authorizer::IsSerial(s)) {
      reactor->Finish(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                                   "serial '" + s.substr(0, 64) + "' is not upper-case hex"));
      return reactor;
    }
    serials.insert(s);
  }
  Status st = authz_.SetRevoked(serials);
  AuditEntry e = EntryFor(*who, "SetRevocations");
  e.args = std::to_string(serials.size()) + " serials";
  e.result = st.ok() ? "ok" : "failed: " + st.message();
  (void)audit_.Append(e);
  spdlog::info("revocation list replaced by {}: {} serials", who->name, serials.size());
  reply->set_count(static_cast<uint32_t>(serials.size()));
  reactor->Finish(ToGrpc(st));
  return reactor;
}

namespace {

// Finishes an enrolment call: audits the outcome (never the token, proofs or
// PEM bodies) and maps the status. Successes are audited when they change
// something (`mutated`).
grpc::ServerUnaryReactor* FinishEnroll(grpc::ServerUnaryReactor* reactor, AuditLog& audit,
                                       const Caller& who, const char* method,
                                       const std::string& args, const Status& s, bool mutated) {
  AuditEntry e{who.name, who.join_token ? "join-token" : pki::RoleName(who.role), method, args,
               s.ok() ? "ok" : "denied: " + s.message()};
  if (!s.ok() && who.join_token) {
    (void)audit.AppendAnonymous(std::move(e));
  } else if (!s.ok() || mutated) {
    (void)audit.Append(e);
  }
  reactor->Finish(ToGrpc(s));
  return reactor;
}

}  // namespace

// The common start of both enrolment calls: authorisation, then the
// plain-text agent's refusal. On a refusal `reactor` is already finished.
Result<Caller> AgentService::CheckEnroll(grpc::CallbackServerContext* ctx,
                                         grpc::ServerUnaryReactor* reactor, const char* method) {
  auto who = authz_.Check(*ctx, method);
  if (!who.ok()) {
    reactor->Finish(ToGrpc(who.status()));
    return who;
  }
  if (!enrollment_) {
    Status refused(StatusCode::kFailedPrecondition,
                   "this agent serves plain text: there is nothing to enrol");
    FinishEnroll(reactor, audit_, *who, method, "", refused, false);
    return refused;
  }
  return who;
}

grpc::ServerUnaryReactor* AgentService::BeginEnroll(grpc::CallbackServerContext* ctx,
                                                    const v1::BeginEnrollRequest* req,
                                                    v1::BeginEnrollReply* reply) {
  auto* reactor = ctx->DefaultReactor();
  auto who = CheckEnroll(ctx, reactor, "BeginEnroll");
  if (!who.ok()) return reactor;
  auto hello = enrollment_->Begin(req->client_nonce(), req->client_proof(), !who->join_token);
  if (hello.ok()) {
    reply->set_agent_nonce(hello->agent_nonce);
    reply->set_public_key_pem(hello->public_key_pem);
    reply->set_agent_proof(hello->agent_proof);
    reply->set_hostname(HostName());
    reply->set_enrolled(hello->enrolled);
  }
  return FinishEnroll(reactor, audit_, *who, "BeginEnroll", "", hello.status(), false);
}

namespace {
// A unary reactor that runs `after` once the call is over (reply sent).
class AfterReactor : public grpc::ServerUnaryReactor {
 public:
  void OnDone() override {
    if (after) after();
    delete this;
  }
  std::function<void()> after;
};
}  // namespace

grpc::ServerUnaryReactor* AgentService::CompleteEnroll(grpc::CallbackServerContext* ctx,
                                                       const v1::CompleteEnrollRequest* req,
                                                       v1::CompleteEnrollReply* reply) {
  auto* reactor = new AfterReactor;
  auto who = CheckEnroll(ctx, reactor, "CompleteEnroll");
  if (!who.ok()) return reactor;
  auto done = enrollment_->Complete(req->agent_nonce(), req->certificate_pem(), req->ca_pem(),
                                    req->proof(), !who->join_token);
  if (!done.ok()) {
    return FinishEnroll(reactor, audit_, *who, "CompleteEnroll", "", done.status(), false);
  }
  // A first enrolment is served at once (the listener restarts after this
  // reply); a renewal within tls.reload_interval, without cutting calls.
  const auto reload =
      done->renewal ? std::chrono::duration_cast<std::chrono::seconds>(config_.tls_reload).count()
                    : 0;
  if (!done->renewal) reactor->after = on_enrolled_;
  reply->set_serial(done->cert.serial);
  reply->set_not_after_unix(done->cert.not_after);
  reply->set_reload_seconds(static_cast<uint32_t>(reload));
  const std::string args =
      fmt::format("{} name={} serial={}", done->renewal ? "renewed" : "enrolled",
                  done->cert.common_name, done->cert.serial);
  spdlog::info("certificate {} by {}: serving it within {} s", args, who->name, reload);
  return FinishEnroll(reactor, audit_, *who, "CompleteEnroll", args, Status::Ok(), true);
}

}  // namespace herd::agent

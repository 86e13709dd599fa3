#include "agent/put_file_call.h"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <climits>
#include <cstdlib>
#include <memory>

#include "agent/files/file_writer.h"
#include "common/text.h"
#include "proto/rpc/cq_tag.h"
#include "proto/rpc/status_map.h"

namespace herd::agent {
namespace {

using rpc::OpTag;

// PutFile: reads the header and the chunks on the serving thread; the
// commit (fsync, rename) runs on the slow-work thread.
// The file `h` asks for, written as `account`: owner and group by name or
// number, checked against this device's user database.
Result<FileOptions> OptionsFor(const v1::PutFileHeader& h, const Account& account) {
  FileOptions o;
  o.mode = h.mode();
  o.set_mode = h.set_mode();
  o.allow_setid = h.allow_setid();
  o.account = &account;
  if (Status s = CheckText(h.owner(), "owner", 256); !s.ok()) return s;
  if (Status s = CheckText(h.group(), "group", 256); !s.ok()) return s;
  if (!h.owner().empty()) {
    auto uid = LookupUid(h.owner());
    if (!uid.ok()) return uid.status();
    o.uid = *uid;
  }
  if (!h.group().empty()) {
    auto gid = LookupGid(h.group());
    if (!gid.ok()) return gid.status();
    o.gid = *gid;
  }
  return o;
}

class PutFileCall final : public rpc::LiveCall {
 public:
  static void Arm(rpc::CallQueue& q, v1::Agent::AsyncService& async, AgentContext& c) {
    if (!q.draining()) new PutFileCall(q, async, c);
  }

 private:
  PutFileCall(rpc::CallQueue& q, v1::Agent::AsyncService& async, AgentContext& c)
      : LiveCall(q), async_(async), s_(c) {
    async.RequestPutFile(&ctx_, &reader_, q.cq(), q.cq(), &requested_);
  }

  void OnRequested(bool ok) {
    if (!ok || queue_.draining()) return;  // the server is shutting down: freed by the queue
    Arm(queue_, async_, s_);
    auto who = Authorize(s_, ctx_, method::kPutFile);
    if (!who.ok()) return Finish(rpc::ToGrpc(who.status()));  // refused at once: nothing is read
    entry_ = EntryFor(*who, method::kPutFile);
    serial_ = who->serial;
    // Each upload holds a temporary and a descriptor: a bounded number.
    if (++s_.uploads > s_.config.files.max_concurrent) {
      --s_.uploads;
      entry_.result = "refused: too many uploads at once";
      (void)s_.audit.AppendRefusal(entry_, who->serial);
      return Finish(grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                                 "too many uploads at once (" +
                                     std::to_string(s_.config.files.max_concurrent) +
                                     "); try again when one has finished"));
    }
    counted_ = true;
    ReadNext();
  }

  ~PutFileCall() override {
    if (counted_) --s_.uploads;
  }

  void OnRead(bool ok) {
    if (!ok) {
      // The caller is done sending, or gone. A cancelled call fails any new
      // operation: headers are sent first as a probe, and only an upload
      // whose caller is still there is committed.
      if (!queue_.draining()) reader_.SendInitialMetadata(&probed_);
      return;
    }
    if (msg_.has_header()) {
      if (writer_) return Fail(Status::Invalid("header sent twice"));
      const auto& h = msg_.header();
      // Checked before anything repeats it (the audit line, the log).
      if (Status s = CheckAbsolutePath(h.path(), "destination"); !s.ok()) return Fail(s);
      entry_.args = fmt::format("path={} size={} mode={:04o} sha256={}", h.path(), h.size(),
                                h.mode(), h.sha256());
      if (InsideDir(h.path(), s_.config.state_dir)) {
        return Fail(Status(StatusCode::kPermissionDenied,
                           "refusing to write " + h.path() +
                               ": it is in the agent's state directory (audit log, keys)"));
      }
      if (h.root()) entry_.args += " root";
      auto account = ActingAccount(s_, h.root());
      if (!account.ok()) {
        entry_.result = "denied: " + account.status().message();
        (void)s_.audit.AppendRefusal(entry_, serial_);
        writer_.reset();
        return Finish(rpc::ToGrpc(account.status()));
      }
      auto options = OptionsFor(h, **account);
      if (!options.ok()) return Fail(options.status());
      auto w = AtomicFileWriter::Open(h.path(), *options, h.size(), h.sha256(),
                                      UploadNotesDir(s_.config));
      if (!w.ok()) return Fail(w.status());
      writer_ = std::move(*w);
      // On record before a byte is written: an agent killed mid-upload
      // leaves the trace. Synced with the result line.
      AuditEntry started = entry_;
      started.result = "started";
      (void)s_.audit.Append(started, false);
    } else if (msg_.has_chunk()) {
      if (!writer_) return Fail(Status::Invalid("data before the header"));
      Status s = writer_->Write(msg_.chunk());
      if (!s.ok()) return Fail(s);
    }
    ReadNext();
  }

  void OnProbed(bool ok) {
    if (!ok) return Fail(Status(StatusCode::kUnavailable, "cancelled by the caller"));
    if (!queue_.PostSlow([this] { Complete(); })) {
      Fail(Status(StatusCode::kResourceExhausted, "the agent is busy: too many slow calls"));
    }
  }

  void ReadNext() {
    if (!queue_.draining()) reader_.Read(&msg_, &read_);  // else freed by the queue
  }

  void Complete() {
    if (!writer_) return Fail(Status::Invalid("no header received"));
    Status s = writer_->Commit();
    if (!s.ok()) return Fail(s);
    spdlog::info("put file {} ({} bytes) from {}", writer_->path(), writer_->written(),
                 ctx_.peer());
    reply_.set_bytes_written(writer_->written());
    reply_.set_sha256(writer_->sha256());
    reply_.set_mode(writer_->mode());
    reply_.set_uid(writer_->uid());
    reply_.set_gid(writer_->gid());
    entry_.result = "ok";
    (void)s_.audit.Append(entry_);
    Finish(grpc::Status::OK);
  }

  void Fail(const Status& s) {
    spdlog::warn("put file {} failed: {}", writer_ ? writer_->path() : "?", s.message());
    writer_.reset();  // removes the temporary
    entry_.result = "failed: " + s.message();
    (void)s_.audit.Append(entry_);
    Finish(rpc::ToGrpc(s));
  }

  void Finish(const grpc::Status& st) {
    if (queue_.draining()) return;  // freed by the queue
    queue_.Finished(method::kPutFile, st.error_code());
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

  v1::Agent::AsyncService& async_;
  AgentContext& s_;
  grpc::ServerContext ctx_;
  grpc::ServerAsyncReader<v1::PutFileReply, v1::PutFileMessage> reader_{&ctx_};
  OpTag<PutFileCall> requested_{this, &PutFileCall::OnRequested};
  OpTag<PutFileCall> read_{this, &PutFileCall::OnRead};
  OpTag<PutFileCall> probed_{this, &PutFileCall::OnProbed};
  OpTag<PutFileCall> finished_{this, &PutFileCall::OnFinished};
  AuditEntry entry_;
  v1::PutFileMessage msg_;
  v1::PutFileReply reply_;
  std::unique_ptr<AtomicFileWriter> writer_;
  bool counted_ = false;  // holds one of s_.uploads
  std::string serial_;    // the caller's certificate
};

}  // namespace

void ArmPutFileCall(rpc::CallQueue& queue, v1::Agent::AsyncService& async, AgentContext& c) {
  PutFileCall::Arm(queue, async, c);
}

}  // namespace herd::agent

#include "agent/apps/install_call.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <memory>

#include "agent/apps/partial_upload.h"
#include "agent/startup_pages.h"
#include "common/file.h"
#include "common/hash.h"
#include "proto/rpc/cq_tag.h"
#include "proto/rpc/status_map.h"

namespace herd::agent {
namespace {

using rpc::OpTag;
constexpr const char* kMethod = rpc::app_method::kInstall;

}  // namespace

void FillInstallReply(const InstalledVersionInfo& v, v1::InstallReply* r) {
  r->set_name(v.name);
  r->set_version(v.version);
  r->set_sequence(v.sequence);
  r->set_bundle_sha256(v.bundle_sha256);
  r->set_files(v.files);
  r->set_bytes(v.bytes);
  for (const auto& s : v.signers) r->add_signers(s);
  r->set_already_installed(v.already_installed);
}

namespace {

class InstallCall final : public rpc::LiveCall {
 public:
  static void Arm(rpc::CallQueue& q, v1::Apps::AsyncService& async, AppsContext& c) {
    if (!q.draining()) new InstallCall(q, async, c);
  }

 private:
  InstallCall(rpc::CallQueue& q, v1::Apps::AsyncService& async, AppsContext& c)
      : LiveCall(q), async_(async), s_(c) {
    async.RequestInstall(&ctx_, &reader_, q.cq(), q.cq(), &requested_);
  }

  void OnRequested(bool ok) {
    if (!ok || queue_.draining()) return;  // the server is shutting down: freed by the queue
    Arm(queue_, async_, s_);
    auto who = Authorize(s_.agent, ctx_, kMethod);
    if (!who.ok()) return Finish(rpc::ToGrpc(who.status()));  // refused at once: nothing is read
    entry_ = EntryFor(*who, kMethod);
    // An upload holds a temporary and a descriptor, as PutFile's do: one count.
    const int most = s_.agent.config.files.max_concurrent;
    if (++s_.agent.uploads > most) {
      --s_.agent.uploads;
      entry_.result = "refused: too many uploads at once";
      (void)s_.agent.audit.AppendRefusal(entry_, who->serial);
      return Finish(grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                                 fmt::format("too many uploads at once ({}); try again when one "
                                             "has finished",
                                             most)));
    }
    counted_ = true;
    ReadNext();
  }

  ~InstallCall() override {
    Release();
    if (counted_) --s_.agent.uploads;
  }

  // Lets go of the partial (kept), then of the digest: another upload of it
  // may go on from here.
  void Release() {
    writer_.reset();
    claim_.Reset();
  }

  void OnRead(bool ok) {
    if (!ok) {
      // The caller is done sending, or gone: headers go first as a probe,
      // and only an upload whose caller is still there is installed.
      if (!queue_.draining()) reader_.SendInitialMetadata(&probed_);
      return;
    }
    if (msg_.has_header()) {
      if (have_header_) return Fail(Status::Invalid("header sent twice"));
      have_header_ = true;
      if (Status s = Header(msg_.header()); !s.ok()) return Fail(s);
      if (done_) return;  // answered without the bytes
    } else if (msg_.has_chunk()) {
      if (!writer_) return Fail(Status::Invalid("data before the header"));
      if (Status s = writer_->Write(msg_.chunk()); !s.ok()) return Fail(s);
    }
    ReadNext();
  }

  Status Header(const v1::InstallHeader& h) {
    const AppsSettings& apps = s_.agent.config.apps;
    if (!IsSha256Hex(h.sha256())) {
      return Status::Invalid("sha256 must be 64 lower-case hex digits");
    }
    sha256_ = h.sha256();
    allow_downgrade_ = h.allow_downgrade();
    entry_.args = fmt::format("bundle sha256={} size={}{}{}", sha256_, h.size(),
                              h.offset() ? fmt::format(" offset={}", h.offset()) : "",
                              allow_downgrade_ ? " allow_downgrade" : "");
    if (h.size() == 0) return Status::Invalid("an empty bundle");
    if (h.size() > apps.max_bundle_bytes) {
      return Status(StatusCode::kResourceExhausted,
                    fmt::format("the bundle has {} bytes; this device takes at most {} "
                                "(apps.max_bundle_size)",
                                h.size(), apps.max_bundle_bytes));
    }
    if (apps.publishers.empty()) {
      return Status(StatusCode::kFailedPrecondition,
                    "this device trusts no app publisher yet (apps.publishers in its agent "
                    "config)");
    }
    InstalledVersionInfo same;
    if (s_.store.Installed(sha256_, &same)) {
      same.already_installed = true;
      FillInstallReply(same, &reply_);
      entry_.result = fmt::format("ok: {} {} (sequence {}) was installed already", same.name,
                                  same.version, same.sequence);
      s_.agent.metrics.RecordInstall("already_installed", 0);
      (void)s_.agent.audit.Append(entry_);
      done_ = true;
      Finish(grpc::Status::OK);
      return Status::Ok();
    }
    claim_ = UploadClaim::Take(s_.store.uploads(), sha256_);
    if (!claim_.held()) {
      return Status(StatusCode::kFailedPrecondition,
                    "this bundle is being uploaded to the device by another call; install it "
                    "again once that one has ended");
    }
    const std::string part = s_.store.PartialPath(sha256_);
    if (h.offset() == 0 && PartialBytes(part) == 0) {
      // A new partial: room for it among the ones kept.
      (void)TrimPartials(ParentDir(part), kKeepPartials - 1, kPartialMaxAge, &s_.store.uploads());
    }
    auto w = PartialUpload::Open(part, s_.store.BundlePath(sha256_), h.size(), sha256_, h.offset());
    if (!w.ok()) return w.status();
    writer_ = std::move(*w);
    reply_.set_resumed_from(h.offset());
    // On record before a byte is written: an agent killed mid-upload leaves
    // the trace.
    AuditEntry started = entry_;
    started.result = "started";
    (void)s_.agent.audit.Append(started, false);
    return Status::Ok();
  }

  void OnProbed(bool ok) {
    if (!ok) return Fail(Status(StatusCode::kUnavailable, "cancelled by the caller"));
    if (!queue_.PostSlow([this] {
          Complete();  // `this` may be gone once it returns
          ReleaseAfterWork("an install");
        })) {
      Fail(Status(StatusCode::kResourceExhausted, "the agent is busy: too many slow calls"));
    }
  }

  void ReadNext() {
    if (!queue_.draining()) reader_.Read(&msg_, &read_);  // else freed by the queue
  }

  // Slow-work thread: commit the upload, then install it.
  void Complete() {
    if (!writer_) return Fail(Status::Invalid("no header received"));
    if (Status s = writer_->Commit(); !s.ok()) return Fail(s);
    Release();
    CrashPoint("install:stored");
    const auto t0 = std::chrono::steady_clock::now();
    auto v = s_.store.Install(sha256_, allow_downgrade_);
    if (!v.ok()) return Fail(v.status());
    s_.agent.metrics.RecordInstall(
        v->already_installed ? "already_installed" : "installed",
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    FillInstallReply(*v, &reply_);
    entry_.result = fmt::format("ok: {} {} (sequence {}){}", v->name, v->version, v->sequence,
                                v->already_installed ? " was installed already" : " installed");
    (void)s_.agent.audit.Append(entry_);
    Finish(grpc::Status::OK);
  }

  void Fail(const Status& s) {
    spdlog::warn("app install {}… refused: {}{}", sha256_.substr(0, 12), s.message(),
                 writer_ && writer_->written() > 0
                     ? fmt::format(" ({} bytes kept to resume)", writer_->written())
                     : "");
    Release();  // keeps what was received, for the next install of this digest
    entry_.result = "failed: " + s.message();
    (void)s_.agent.audit.Append(entry_);
    s_.agent.metrics.RecordInstall("refused", 0);
    done_ = true;
    Finish(rpc::ToGrpc(s));
  }

  void Finish(const grpc::Status& st) {
    if (queue_.draining()) return;  // freed by the queue
    queue_.Finished(kMethod, st.error_code());
    if (st.ok()) {
      reader_.Finish(reply_, st, &finished_);
    } else {
      reader_.FinishWithError(st, &finished_);
    }
  }
  void OnFinished(bool) { delete this; }

  v1::Apps::AsyncService& async_;
  AppsContext& s_;
  grpc::ServerContext ctx_;
  grpc::ServerAsyncReader<v1::InstallReply, v1::InstallMessage> reader_{&ctx_};
  OpTag<InstallCall> requested_{this, &InstallCall::OnRequested};
  OpTag<InstallCall> read_{this, &InstallCall::OnRead};
  OpTag<InstallCall> probed_{this, &InstallCall::OnProbed};
  OpTag<InstallCall> finished_{this, &InstallCall::OnFinished};
  AuditEntry entry_;
  v1::InstallMessage msg_;
  v1::InstallReply reply_;
  std::unique_ptr<PartialUpload> writer_;
  std::string sha256_;
  bool allow_downgrade_ = false, have_header_ = false, done_ = false;
  bool counted_ = false;  // holds one of the agent's uploads
  UploadClaim claim_;     // of the digest (AppStore::uploads)
};

}  // namespace

void ArmInstallCall(rpc::CallQueue& queue, v1::Apps::AsyncService& async, AppsContext& c) {
  InstallCall::Arm(queue, async, c);
}

}  // namespace herd::agent

#include "control/mux.h"

#include <grpcpp/generic/async_generic_service.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "common/file.h"
#include "proto/rpc/agent_methods.h"
#include "proto/rpc/call_queue.h"
#include "proto/rpc/transport.h"

namespace herd::control {
namespace {

using Clock = std::chrono::steady_clock;

// Channels by agent (address, name), opened at first use and kept; plus the
// bookkeeping for the idle exit.
class ChannelCache {
 public:
  explicit ChannelCache(const rpc::TransportOptions& t)
      : creds_(rpc::MakeCredentials(t)), tls_(!t.plaintext) {}
  std::shared_ptr<grpc::Channel> Get(const std::string& address, const std::string& name) {
    std::lock_guard<std::mutex> l(mu_);
    auto& ch = channels_[{address, name}];
    if (!ch) {
      rpc::ChannelSpec spec;
      spec.address = address;
      if (tls_) spec.tls_name = name;
      ch = rpc::MakeChannel(spec, creds_);
    }
    return ch;
  }
  void CallStarted() {
    std::lock_guard<std::mutex> l(mu_);
    ++active_;
    last_ = Clock::now();
  }
  void CallEnded() {
    std::lock_guard<std::mutex> l(mu_);
    --active_;
    last_ = Clock::now();
  }
  bool IdleFor(std::chrono::milliseconds d) {
    std::lock_guard<std::mutex> l(mu_);
    return active_ == 0 && Clock::now() - last_ >= d;
  }

 private:
  const std::shared_ptr<grpc::ChannelCredentials> creds_;
  const bool tls_;
  std::mutex mu_;  // guards everything below
  std::map<std::pair<std::string, std::string>, std::shared_ptr<grpc::Channel>> channels_;
  int active_ = 0;
  Clock::time_point last_ = Clock::now();
};

std::string Metadata(const grpc::GenericServerContext& ctx, const char* key) {
  auto it = ctx.client_metadata().find(key);
  return it == ctx.client_metadata().end() ? "" : std::string(it->second.data(), it->second.size());
}

// One forwarded call: a stream facing herd and a stream facing the agent,
// pumping messages both ways, one in flight each way. Every operation started
// is counted; the call is freed when none is left (the server side's done
// notification is one of them).
class Forward final : public rpc::LiveCall {
 public:
  static void Arm(rpc::CallQueue& q, grpc::AsyncGenericService& generic, ChannelCache& cache) {
    if (!q.draining()) new Forward(q, generic, cache);
  }
  ~Forward() override {
    if (counted_) cache_.CallEnded();
  }

 private:
  // As the queue shuts down: the call to the agent is cancelled.
  void OnDrain() override {
    if (up_) upstream_ctx_.TryCancel();
  }

  // A tag whose completion is counted.
  class Op final : public rpc::CqTag {
   public:
    Op(Forward* f, void (Forward::*fn)(bool)) : f_(f), fn_(fn) {}
    void Done(bool ok) override {
      Forward* f = f_;
      --f->pending_;
      (f->*fn_)(ok);
      if (f->pending_ == 0) delete f;
    }

   private:
    Forward* const f_;
    void (Forward::*const fn_)(bool);
  };

  Forward(rpc::CallQueue& q, grpc::AsyncGenericService& generic, ChannelCache& cache)
      : LiveCall(q), generic_(generic), cache_(cache) {
    ctx_.AsyncNotifyWhenDone(&done_);
    generic_.RequestCall(&ctx_, &stream_, q.cq(), q.cq(), &requested_);
  }

  // Counts an operation about to start; false once the queue is shutting down.
  bool Go() {
    if (queue_.draining()) return false;
    ++pending_;
    return true;
  }

  void OnRequested(bool ok) {
    if (!ok || queue_.draining()) return;  // the server is shutting down: freed by the queue
    Arm(queue_, generic_, cache_);
    pending_ = 1;  // the done notification, which comes once for a matched call
    const std::string address = Metadata(ctx_, kMuxAddressKey);
    const std::string name = Metadata(ctx_, kMuxNameKey);
    if (address.empty() || name.empty() || ctx_.method().rfind("/herd.v1.", 0) != 0) {
      if (Go()) {
        stream_.Finish(
            grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                         "herd mux: a call needs herd-agent-address and herd-agent-name"),
            &herd_finished_);
      }
      return;
    }
    cache_.CallStarted();
    counted_ = true;
    one_request_ =
        ctx_.method() != rpc::agent_method::kPutFile && ctx_.method() != rpc::app_method::kInstall;
    upstream_ctx_.set_deadline(ctx_.deadline());
    // Headers leave with the first message, not in a packet of their own.
    upstream_ctx_.set_initial_metadata_corked(true);
    grpc::GenericStub stub(cache_.Get(address, name));
    up_ = stub.PrepareCall(&upstream_ctx_, ctx_.method(), queue_.cq());
    // Corked, StartCall only keeps the headers for the first write and never
    // returns its tag (ClientAsyncReaderWriter::StartCallInternal): none is given.
    up_->StartCall(nullptr);
    ReadHerd();
    ReadAgent();
  }

  void ReadHerd() {
    if (Go()) stream_.Read(&from_herd_, &herd_read_);
  }
  void ReadAgent() {
    if (Go()) up_->Read(&from_agent_, &agent_read_);
  }

  // herd -> mux
  void OnHerdRead(bool ok) {
    if (ok && one_request_ && sent_last_) {  // a second request where the method takes one
      upstream_ctx_.TryCancel();
      return;
    }
    if (ok && one_request_) {
      // The only request: it goes out with the end of the stream, so the
      // agent gets headers, message and half-close in one read.
      sent_last_ = true;
      if (Go()) up_->WriteLast(from_herd_, grpc::WriteOptions(), &agent_written_);
      return;
    }
    if (ok) {
      if (Go()) up_->Write(from_herd_, &agent_written_);
      return;
    }
    // herd is done sending (no write to the agent is in flight here).
    if (!sent_last_ && Go()) up_->WritesDone(&agent_writes_done_);
  }
  // mux -> agent
  void OnAgentWritten(bool ok) {
    if (ok) {
      ReadHerd();
    } else {
      upstream_ctx_.TryCancel();  // the agent's side ends; its Finish brings the status
    }
  }
  // agent -> mux
  void OnAgentRead(bool ok) {
    if (ok) {
      if (Go()) stream_.Write(from_agent_, &herd_written_);
      return;
    }
    if (Go()) up_->Finish(&status_, &agent_finished_);
  }
  // mux -> herd
  void OnHerdWritten(bool ok) {
    if (ok) {
      ReadAgent();
    } else {
      upstream_ctx_.TryCancel();  // herd is gone
      ReadAgent();                // fails at once: then the agent's status is collected
    }
  }
  // No write to herd is in flight here: reads from the agent wait for it.
  void OnAgentFinished(bool) {
    // The agent's word on its revocation list goes back to herd, which
    // pushes a newer list where one is behind.
    const auto& trailers = upstream_ctx_.GetServerTrailingMetadata();
    if (auto it = trailers.find(rpc::agent_method::kRevocationVersionKey); it != trailers.end()) {
      ctx_.AddTrailingMetadata(rpc::agent_method::kRevocationVersionKey,
                               std::string(it->second.data(), it->second.size()));
    }
    if (Go()) stream_.Finish(status_, &herd_finished_);
  }
  void OnDoneNotified(bool) {
    if (ctx_.IsCancelled() && up_) upstream_ctx_.TryCancel();
  }
  void Ignore(bool) {}

  grpc::AsyncGenericService& generic_;
  ChannelCache& cache_;
  grpc::GenericServerContext ctx_;
  grpc::GenericServerAsyncReaderWriter stream_{&ctx_};
  grpc::ClientContext upstream_ctx_;
  std::unique_ptr<grpc::GenericClientAsyncReaderWriter> up_;
  grpc::ByteBuffer from_herd_, from_agent_;
  grpc::Status status_;
  int pending_ = 0;
  bool counted_ = false, one_request_ = true, sent_last_ = false;
  rpc::OpTag<Forward> requested_{this, &Forward::OnRequested};
  Op done_{this, &Forward::OnDoneNotified};
  Op herd_read_{this, &Forward::OnHerdRead};
  Op agent_written_{this, &Forward::OnAgentWritten};
  Op agent_writes_done_{this, &Forward::Ignore};
  Op agent_read_{this, &Forward::OnAgentRead};
  Op herd_written_{this, &Forward::OnHerdWritten};
  Op agent_finished_{this, &Forward::OnAgentFinished};
  Op herd_finished_{this, &Forward::Ignore};
};

// herd's calls, forwarded: a generic service, so that every method of
// every herd.v1 service goes through unchanged.
class MuxService final : public rpc::Service {
 public:
  explicit MuxService(ChannelCache& cache) : cache_(cache) {}
  void Register(grpc::ServerBuilder& builder) override {
    builder.RegisterAsyncGenericService(&generic_);
  }
  void Arm(rpc::CallQueue& queue) override { Forward::Arm(queue, generic_, cache_); }

 private:
  ChannelCache& cache_;
  grpc::AsyncGenericService generic_;
};

}  // namespace

std::string MuxSocketPath(const std::string& pki_dir, const std::string& identity) {
  return pki_dir + "/mux-" + identity + ".sock";
}

int MuxPid(const std::string& socket_path) {
  auto text = ReadFileToString(socket_path + ".pid");
  if (!text.ok()) return 0;
  const int pid = std::atoi(text->c_str());
  if (pid <= 0 || ::kill(pid, 0) != 0) return 0;
  // A recycled pid is not our mux: its command line must be herd's mux.
  auto cmdline = ReadFileToString("/proc/" + std::to_string(pid) + "/cmdline");
  if (!cmdline.ok() || cmdline->find("herd") == std::string::npos ||
      cmdline->find(std::string("mux\0", 4)) == std::string::npos) {
    return 0;
  }
  // And it must be accepting connections.
  sockaddr_un addr{};
  if (socket_path.size() >= sizeof addr.sun_path) return 0;
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, socket_path.c_str(), socket_path.size() + 1);
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return 0;
  const bool up = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  ::close(fd);
  return up ? pid : 0;
}

Status RunMux(const MuxOptions& opts, const std::atomic<bool>* stop) {
  if (opts.socket_path.size() >= sizeof(sockaddr_un{}.sun_path)) {
    return Status::Invalid("socket path " + opts.socket_path +
                           " is too long for a unix socket; use a shorter --pki-dir");
  }
  if (MuxPid(opts.socket_path) != 0) {
    return Status(StatusCode::kAlreadyExists, "a mux already serves " + opts.socket_path);
  }
  ::unlink(opts.socket_path.c_str());  // a stale socket of a mux that died
  ChannelCache cache(opts.transport);
  rpc::Server server;
  server.Add(std::make_unique<MuxService>(cache));
  grpc::ServerBuilder builder;
  builder.AddListeningPort("unix:" + opts.socket_path, grpc::InsecureServerCredentials());
  builder.SetMaxReceiveMessageSize(64 << 20);
  builder.AddChannelArgument(GRPC_ARG_ENABLE_CHANNELZ, 0);
  const mode_t old_umask = ::umask(077);  // the socket: owner only
  Status started = server.Start(builder);
  ::umask(old_umask);
  if (!started.ok()) {
    return Status(StatusCode::kUnavailable, "cannot listen on " + opts.socket_path);
  }
  ::chmod(opts.socket_path.c_str(), 0600);
  if (Status s =
          WriteFileAtomic(opts.socket_path + ".pid", std::to_string(::getpid()) + "\n", 0600);
      !s.ok()) {
    return s;  // the server shuts down as it goes out of scope
  }
  // Bounded polling: the idle check and the stop flag, twice a second.
  while (!(stop && stop->load()) && !cache.IdleFor(opts.idle)) {
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
  }
  ::unlink(opts.socket_path.c_str());
  ::unlink((opts.socket_path + ".pid").c_str());
  // Calls still going to agents are cancelled as the queue drains.
  server.Shutdown(std::chrono::seconds(5));
  return Status::Ok();
}

}  // namespace herd::control

#include "control/mux.h"

#include <grpcpp/generic/async_generic_service.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <condition_variable>
#include <cstring>
#include <map>
#include <mutex>
#include <thread>

#include "common/file.h"
#include "control/grpc_util.h"

namespace herd::control {
namespace {

using Clock = std::chrono::steady_clock;

// Channels by agent (address, name), opened at first use and kept; plus the
// bookkeeping for the idle exit.
class ChannelCache {
 public:
  explicit ChannelCache(const TransportOptions& t)
      : creds_(MakeCredentials(t)), tls_(!t.plaintext) {}
  std::shared_ptr<grpc::Channel> Get(const std::string& address, const std::string& name) {
    std::lock_guard<std::mutex> l(mu_);
    auto& ch = channels_[{address, name}];
    if (!ch) ch = MakeChannel(address, name, creds_, tls_);
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
    if (active_ == 0) idle_.notify_all();
  }
  // After the server has shut down: waits (bounded) until every call object is gone.
  void WaitNoCalls(std::chrono::seconds limit) {
    std::unique_lock<std::mutex> l(mu_);
    idle_.wait_for(l, limit, [&] { return active_ == 0; });
  }
  bool IdleFor(std::chrono::milliseconds d) {
    std::lock_guard<std::mutex> l(mu_);
    return active_ == 0 && Clock::now() - last_ >= d;
  }

 private:
  const std::shared_ptr<grpc::ChannelCredentials> creds_;
  const bool tls_;
  std::mutex mu_;  // guards everything below
  std::condition_variable idle_;
  std::map<std::pair<std::string, std::string>, std::shared_ptr<grpc::Channel>> channels_;
  int active_ = 0;
  Clock::time_point last_ = Clock::now();
};

std::string Metadata(const grpc::GenericCallbackServerContext* ctx, const char* key) {
  auto it = ctx->client_metadata().find(key);
  return it == ctx->client_metadata().end() ? ""
                                            : std::string(it->second.data(), it->second.size());
}

// One forwarded call: a server reactor facing herd and a client reactor
// facing the agent, pumping messages both ways, one in flight each way.
// Deleted when both sides are done.
class Forward final : public grpc::ServerGenericBidiReactor {
 public:
  Forward(grpc::GenericCallbackServerContext* ctx, std::shared_ptr<grpc::Channel> channel,
          ChannelCache& cache)
      : up_(this), cache_(cache), one_request_(ctx->method() != kClientStreamingMethod) {
    cache_.CallStarted();
    upstream_ctx_.set_deadline(ctx->deadline());
    // Headers leave with the first message, not in a packet of their own.
    upstream_ctx_.set_initial_metadata_corked(true);
    grpc::GenericStub stub(std::move(channel));
    stub.PrepareBidiStreamingCall(&upstream_ctx_, ctx->method(), grpc::StubOptions(), &up_);
    up_.AddHold();  // released once herd has sent everything (or gave up)
    StartRead(&from_herd_);
    up_.StartRead(&from_agent_);
    up_.StartCall();
  }

  // herd -> mux
  void OnReadDone(bool ok) override {
    if (ok && one_request_) {
      if (sent_last_) {  // a second request where the method takes one
        upstream_ctx_.TryCancel();
        ReleaseHold();
        return;
      }
      // The only request: it goes out with the end of the stream, so the
      // agent gets headers, message and half-close in one read.
      sent_last_ = true;
      up_.StartWriteLast(&from_herd_, grpc::WriteOptions());
      return;
    }
    if (ok) {
      up_.StartWrite(&from_herd_);
      return;
    }
    if (!one_request_) up_.StartWritesDone();
    ReleaseHold();
  }
  // mux -> herd. The agent side holds (AddHold in Upstream::OnReadDone)
  // while this write is in flight, so it cannot finish under us.
  void OnWriteDone(bool ok) override {
    if (ok) {
      up_.StartRead(&from_agent_);
    } else {
      upstream_ctx_.TryCancel();
    }
    up_.RemoveHold();
  }
  void OnCancel() override { upstream_ctx_.TryCancel(); }
  void OnDone() override { Unref(); }

 private:
  class Upstream final : public grpc::ClientBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer> {
   public:
    explicit Upstream(Forward* f) : f_(f) {}
    void OnWriteDone(bool ok) override {
      if (ok) {
        f_->StartRead(&f_->from_herd_);
      } else {
        f_->ReleaseHold();
      }
    }
    void OnReadDone(bool ok) override {
      if (!ok) return;  // OnDone brings the status
      AddHold();        // released when the write to herd is done
      f_->StartWrite(&f_->from_agent_);
    }
    void OnDone(const grpc::Status& s) override { f_->UpstreamDone(s); }

   private:
    Forward* f_;
  };

  void ReleaseHold() {
    if (!released_.exchange(true)) up_.RemoveHold();
  }
  // No write to herd can be in flight here (see OnWriteDone).
  void UpstreamDone(const grpc::Status& s) {
    Finish(s);
    Unref();
  }
  void Unref() {
    if (refs_.fetch_sub(1) == 1) {
      ChannelCache& cache = cache_;
      delete this;
      cache.CallEnded();  // last: RunMux may destroy the cache once no call is active
    }
  }

  // Every agent method takes one request message except this one.
  static constexpr const char* kClientStreamingMethod = "/herd.v1.Agent/PutFile";

  grpc::ClientContext upstream_ctx_;
  Upstream up_;
  ChannelCache& cache_;
  const bool one_request_;
  bool sent_last_ = false;  // herd -> agent reads and writes never overlap
  grpc::ByteBuffer from_herd_, from_agent_;
  std::atomic<int> refs_{2};  // server side OnDone + upstream OnDone
  std::atomic<bool> released_{false};
};

class MuxService final : public grpc::CallbackGenericService {
 public:
  explicit MuxService(ChannelCache& cache) : cache_(cache) {}
  grpc::ServerGenericBidiReactor* CreateReactor(grpc::GenericCallbackServerContext* ctx) override {
    const std::string address = Metadata(ctx, kMuxAddressKey);
    const std::string name = Metadata(ctx, kMuxNameKey);
    if (address.empty() || name.empty() || ctx->method().rfind("/herd.v1.", 0) != 0) {
      class Refuse : public grpc::ServerGenericBidiReactor {
       public:
        Refuse() {
          Finish(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                              "herd mux: a call needs herd-agent-address and herd-agent-name"));
        }
        void OnDone() override { delete this; }
      };
      return new Refuse;
    }
    return new Forward(ctx, cache_.Get(address, name), cache_);
  }

 private:
  ChannelCache& cache_;
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
  MuxService service(cache);
  grpc::ServerBuilder builder;
  builder.AddListeningPort("unix:" + opts.socket_path, grpc::InsecureServerCredentials());
  builder.RegisterCallbackGenericService(&service);
  builder.SetMaxReceiveMessageSize(64 << 20);
  builder.AddChannelArgument(GRPC_ARG_ENABLE_CHANNELZ, 0);
  const mode_t old_umask = ::umask(077);  // the socket: owner only
  auto server = builder.BuildAndStart();
  ::umask(old_umask);
  if (!server) return Status(StatusCode::kUnavailable, "cannot listen on " + opts.socket_path);
  ::chmod(opts.socket_path.c_str(), 0600);
  if (Status s =
          WriteFileAtomic(opts.socket_path + ".pid", std::to_string(::getpid()) + "\n", 0600);
      !s.ok()) {
    server->Shutdown();
    return s;
  }
  // Bounded polling: the idle check and the stop flag, twice a second.
  while (!(stop && stop->load()) && !cache.IdleFor(opts.idle)) {
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
  }
  ::unlink(opts.socket_path.c_str());
  ::unlink((opts.socket_path + ".pid").c_str());
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
  cache.WaitNoCalls(std::chrono::seconds(10));
  return Status::Ok();
}

}  // namespace herd::control

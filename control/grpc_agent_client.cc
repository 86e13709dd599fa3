// GrpcAgentClient: AgentClient over gRPC's generic stub and callback API.
// One heap-allocated call object per RPC owns its ClientContext and buffers
// and deletes itself after `done` has fired.
#include "control/grpc_agent_client.h"

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>

#include <condition_variable>
#include <list>
#include <mutex>
#include <set>

#include "control/mux.h"
#include "proto/rpc/agent_methods.h"
#include "proto/rpc/status_map.h"
#include "proto/rpc/transport.h"

namespace herd::control {
namespace {

using Clock = std::chrono::steady_clock;
using Metadata = std::vector<std::pair<std::string, std::string>>;

// Tracks live calls: their contexts, so CancelAll can reach them, and their
// count, so the client (and its channel) outlives every call object until the
// last one is fully destroyed -- not merely until its callback has fired.
class ContextRegistry {
 public:
  // Held by each call object as its first member, so it is released last.
  class Token {
   public:
    explicit Token(std::shared_ptr<ContextRegistry> r) : r_(std::move(r)) {
      std::lock_guard<std::mutex> l(r_->mu_);
      ++r_->calls_;
    }
    ~Token() {
      std::lock_guard<std::mutex> l(r_->mu_);
      if (--r_->calls_ == 0) r_->idle_.notify_all();
    }
    Token(const Token&) = delete;
    Token& operator=(const Token&) = delete;
    ContextRegistry& registry() { return *r_; }

   private:
    std::shared_ptr<ContextRegistry> r_;
  };

  // Waits (bounded) until no call object is alive.
  void WaitIdle() {
    std::unique_lock<std::mutex> l(mu_);
    idle_.wait_for(l, std::chrono::seconds(10), [&] { return calls_ == 0; });
  }
  void Add(grpc::ClientContext* c) {
    std::lock_guard<std::mutex> l(mu_);
    live_.insert(c);
  }
  void Remove(grpc::ClientContext* c) {
    std::lock_guard<std::mutex> l(mu_);
    live_.erase(c);
  }

  // Flow control. A call whose receiver said "enough" parks here (holding
  // its reactor, so it cannot end) unless a Resume came since its message
  // was handed over: `resumes` before the hand-over, compared after.
  uint64_t resumes() {
    std::lock_guard<std::mutex> l(mu_);
    return resumes_;
  }
  bool Park(uint64_t resumes_before, std::function<void()> resume) {
    std::lock_guard<std::mutex> l(mu_);
    if (resumes_ != resumes_before) return false;
    parked_.push_back(std::move(resume));
    return true;
  }
  void Resume() {
    std::vector<std::function<void()>> parked;
    {
      std::lock_guard<std::mutex> l(mu_);
      ++resumes_;
      parked.swap(parked_);
    }
    for (auto& r : parked) r();  // outside the lock: it may end the call
  }
  void CancelAll() {
    std::lock_guard<std::mutex> l(mu_);
    for (auto* c : live_) c->TryCancel();
  }

 private:
  std::mutex mu_;  // guards live_ and calls_
  std::condition_variable idle_;
  std::set<grpc::ClientContext*> live_;
  int calls_ = 0;
  uint64_t resumes_ = 0;
  std::vector<std::function<void()>> parked_;
};

// The bytes of `*s` as a ByteBuffer, without a copy. The slice holds a
// reference to the string: gRPC may report a write done while the bytes
// still wait in its buffers, so the memory must live as long as the slice,
// not merely as long as the write.
grpc::ByteBuffer Share(std::shared_ptr<const std::string> s) {
  auto* owner = new std::shared_ptr<const std::string>(std::move(s));
  grpc::Slice slice(
      const_cast<char*>((*owner)->data()), (*owner)->size(),
      [](void* p) { delete static_cast<std::shared_ptr<const std::string>*>(p); }, owner);
  return grpc::ByteBuffer(&slice, 1);
}

std::string Bytes(const grpc::ByteBuffer& b) {
  std::vector<grpc::Slice> slices;
  std::string out;
  if (!b.Dump(&slices).ok()) return out;
  out.reserve(b.Length());
  for (const auto& s : slices) out.append(reinterpret_cast<const char*>(s.begin()), s.size());
  return out;
}

// The revocation list version the agent's reply carried, or -1.
int64_t RevocationVersion(const grpc::ClientContext& ctx) {
  const auto& trailers = ctx.GetServerTrailingMetadata();
  auto it = trailers.find(rpc::agent_method::kRevocationVersionKey);
  if (it == trailers.end() || it->second.size() == 0 || it->second.size() > 19) return -1;
  int64_t v = 0;
  for (char c : it->second) {
    if (c < '0' || c > '9') return -1;
    v = v * 10 + (c - '0');
  }
  return v;
}

// What every call object holds: its registration, context, the request it
// sends and the callbacks.
struct CallBase {
  CallBase(std::shared_ptr<ContextRegistry> r, const CallSpec& spec, const Metadata& metadata,
           AgentClient::MessageFn on_message, AgentClient::DoneFn done)
      : token(std::move(r)),
        method(spec.method),
        request(spec.request),
        on_message(std::move(on_message)),
        done(std::move(done)) {
    ctx.set_deadline(std::chrono::system_clock::now() + spec.timeout);
    for (const auto& [k, v] : metadata) ctx.AddMetadata(k, v);
    token.registry().Add(&ctx);
  }

  // Hands a reply message over and counts it; false: the receiver holds enough.
  bool Received(const grpc::ByteBuffer& b) {
    ++messages;
    return on_message(Bytes(b));
  }
  // Reports the end; the caller deletes the call object afterwards.
  void End(const grpc::Status& s) {
    token.registry().Remove(&ctx);
    CallEnd end;
    end.status = rpc::FromGrpc(s);
    end.messages = messages;
    end.elapsed = std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - started);
    end.revocation_version = RevocationVersion(ctx);
    if (end.status.code() == StatusCode::kUnavailable && messages == 0) {
      end.status = Status(StatusCode::kUnavailable, rpc::ExplainUnreachable(end.status.message()));
    }
    done(std::move(end));
  }

  ContextRegistry::Token token;  // first member: released last
  grpc::ClientContext ctx;
  const std::string method;
  const std::shared_ptr<const std::string> request;  // kept until the call ends
  AgentClient::MessageFn on_message;
  AgentClient::DoneFn done;
  const Clock::time_point started = Clock::now();
  size_t messages = 0;
};

struct UnaryCall : CallBase {
  using CallBase::CallBase;
  grpc::ByteBuffer req, reply;
};

// Streaming calls (Exec, PutFile) as one bidirectional reactor: for a
// server stream, the request goes out with the end of the stream (headers,
// message and half-close in one batch); for a client stream, the source's
// messages follow, one write in flight at a time.
// CallBase comes first, so that its token is the last thing released.
class StreamCall final : public CallBase,
                         public grpc::ClientBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer> {
 public:
  StreamCall(std::shared_ptr<ContextRegistry> r, const CallSpec& spec, const Metadata& metadata,
             AgentClient::MessageFn on_message, AgentClient::DoneFn done)
      : CallBase(std::move(r), spec, metadata, std::move(on_message), std::move(done)),
        stream_(spec.stream) {
    // Headers leave with the first message, not in a packet of their own.
    ctx.set_initial_metadata_corked(true);
  }

  void Begin() {
    out_ = Share(request);
    if (stream_) {
      StartWrite(&out_);
    } else {
      StartWriteLast(&out_, grpc::WriteOptions());
    }
    StartRead(&in_);
    StartCall();
  }

  void OnWriteDone(bool ok) override {
    if (!ok || !stream_) return;  // broken stream: OnDone reports the status
    auto chunk = std::make_shared<std::string>();
    if (!stream_->Message(next_++, chunk.get())) return StartWritesDone();
    out_ = Share(std::move(chunk));
    StartWrite(&out_);
  }
  void OnReadDone(bool ok) override {
    if (!ok) return;  // OnDone follows with the status
    ContextRegistry& r = token.registry();
    const uint64_t resumes = r.resumes();
    if (!Received(in_)) {
      // Held until Resume: reading stops, the agent's writes stall.
      AddHold();
      if (r.Park(resumes, [this] {
            StartRead(&in_);
            RemoveHold();
          })) {
        return;
      }
      RemoveHold();
    }
    StartRead(&in_);
  }
  void OnDone(const grpc::Status& s) override {
    End(s);
    delete this;
  }

 private:
  const std::shared_ptr<const StreamSource> stream_;
  grpc::ByteBuffer out_, in_;
  size_t next_ = 0;
};

class GrpcAgentClient final : public AgentClient {
 public:
  // `metadata` goes on every call (the mux reads the agent's address from it).
  explicit GrpcAgentClient(std::shared_ptr<grpc::Channel> channel, Metadata metadata = {})
      : metadata_(std::move(metadata)),
        stub_(std::move(channel)),
        registry_(std::make_shared<ContextRegistry>()) {}
  ~GrpcAgentClient() override { registry_->WaitIdle(); }

  void Start(const CallSpec& spec, MessageFn on_message, DoneFn done) override {
    if (spec.shape != CallShape::kUnary) {
      auto* call =
          new StreamCall(registry_, spec, metadata_, std::move(on_message), std::move(done));
      stub_.PrepareBidiStreamingCall(&call->ctx, call->method, grpc::StubOptions(), call);
      call->Begin();
      return;
    }
    auto* call = new UnaryCall(registry_, spec, metadata_, std::move(on_message), std::move(done));
    call->req = Share(call->request);
    stub_.UnaryCall(&call->ctx, call->method, grpc::StubOptions(), &call->req, &call->reply,
                    [call](grpc::Status s) {
                      if (s.ok()) call->Received(call->reply);
                      call->End(s);
                      delete call;
                    });
  }

  void CancelAll() override { registry_->CancelAll(); }
  void Resume() override { registry_->Resume(); }

 private:
  const Metadata metadata_;
  grpc::GenericStub stub_;
  std::shared_ptr<ContextRegistry> registry_;
};

// A command that calls the same hosts again (herd app install asks, then
// sends; herd logs --follow every second; certificate renewal) reuses each
// host's connection: the last kKeep channels stay open for the factory's
// life, newest first, so a second round pays no second TLS handshake. A
// fan-out wider than that keeps at most kKeep idle connections.
class GrpcClientFactory final : public AgentClientFactory {
 public:
  static constexpr size_t kKeep = 128;
  explicit GrpcClientFactory(const rpc::TransportOptions& opts)
      : creds_(rpc::MakeCredentials(opts)), tls_(!opts.plaintext) {}
  std::unique_ptr<AgentClient> Connect(const std::string& address,
                                       const std::string& name) override {
    return std::make_unique<GrpcAgentClient>(ChannelFor(address, name));
  }

 private:
  std::shared_ptr<grpc::Channel> ChannelFor(const std::string& address, const std::string& name) {
    std::lock_guard<std::mutex> lock(mu_);
    const std::string key = address + '\n' + name;
    for (auto it = kept_.begin(); it != kept_.end(); ++it) {
      if (it->first != key) continue;
      kept_.splice(kept_.begin(), kept_, it);
      return kept_.front().second;
    }
    rpc::ChannelSpec spec;
    spec.address = address;
    if (tls_) spec.tls_name = name;
    kept_.emplace_front(key, rpc::MakeChannel(spec, creds_));
    if (kept_.size() > kKeep) kept_.pop_back();
    return kept_.front().second;
  }

  std::shared_ptr<grpc::ChannelCredentials> creds_;
  bool tls_;
  std::mutex mu_;
  std::list<std::pair<std::string, std::shared_ptr<grpc::Channel>>> kept_;  // newest first
};

// Every host's calls go over one local connection to the mux, which forwards
// them to the agent named in the call's metadata.
class MuxClientFactory final : public AgentClientFactory {
 public:
  explicit MuxClientFactory(const std::string& socket_path) {
    rpc::ChannelSpec spec;
    spec.address = "unix:" + socket_path;
    spec.own_subchannel_pool = false;
    spec.bdp_probe = true;
    channel_ = rpc::MakeChannel(spec, grpc::InsecureChannelCredentials());
  }
  std::unique_ptr<AgentClient> Connect(const std::string& address,
                                       const std::string& name) override {
    return std::make_unique<GrpcAgentClient>(
        channel_, Metadata{{kMuxAddressKey, address}, {kMuxNameKey, name}});
  }

 private:
  std::shared_ptr<grpc::Channel> channel_;
};

}  // namespace

std::unique_ptr<AgentClientFactory> MakeGrpcClientFactory(const rpc::TransportOptions& opts) {
  return std::make_unique<GrpcClientFactory>(opts);
}

std::unique_ptr<AgentClientFactory> MakeMuxClientFactory(const std::string& socket_path) {
  return std::make_unique<MuxClientFactory>(socket_path);
}

}  // namespace herd::control

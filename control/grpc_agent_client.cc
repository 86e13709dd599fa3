// GrpcAgentClient: AgentClient over the generated stub's callback API. One
// channel per client (per host); one heap-allocated call object per RPC owns
// its ClientContext and deletes itself after `done` has fired.
#include <grpcpp/grpcpp.h>
#include <unistd.h>

#include <condition_variable>
#include <fstream>
#include <mutex>
#include <set>
#include <sstream>

#include "common/file.h"
#include "common/pki.h"
#include "control/agent_client.h"
#include "control/grpc_util.h"
#include "herd/v1/agent.grpc.pb.h"

namespace herd::control {

Status FromGrpc(const grpc::Status& s) {
  if (s.ok()) return Status::Ok();
  StatusCode code;
  switch (s.error_code()) {
    case grpc::StatusCode::UNAVAILABLE:
      code = StatusCode::kUnavailable;
      break;
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      code = StatusCode::kDeadlineExceeded;
      break;
    case grpc::StatusCode::INVALID_ARGUMENT:
      code = StatusCode::kInvalidArgument;
      break;
    case grpc::StatusCode::NOT_FOUND:
      code = StatusCode::kNotFound;
      break;
    case grpc::StatusCode::ALREADY_EXISTS:
      code = StatusCode::kAlreadyExists;
      break;
    case grpc::StatusCode::PERMISSION_DENIED:
      code = StatusCode::kPermissionDenied;
      break;
    case grpc::StatusCode::UNAUTHENTICATED:
      code = StatusCode::kUnauthenticated;
      break;
    case grpc::StatusCode::FAILED_PRECONDITION:
      code = StatusCode::kFailedPrecondition;
      break;
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      code = StatusCode::kResourceExhausted;
      break;
    default:
      code = StatusCode::kInternal;
      break;
  }
  std::string msg = s.error_message();
  if (msg.empty()) msg = "gRPC status " + std::to_string(static_cast<int>(s.error_code()));
  return Status(code, msg);
}

// IP literals skip the DNS resolver (and its executor hop): a measurable
// share of per-host cost at 1000s of hosts.
std::string ChannelTarget(const std::string& address) {
  const std::string host = address.substr(0, address.rfind(':'));
  if (!host.empty() && host.front() == '[') return "ipv6:" + address;
  if (!host.empty() && host.find_first_not_of("0123456789.") == std::string::npos) {
    return "ipv4:" + address;
  }
  return "dns:///" + address;
}

std::shared_ptr<grpc::ChannelCredentials> MakeCredentials(const TransportOptions& opts) {
  if (opts.plaintext) return grpc::InsecureChannelCredentials();
  grpc::SslCredentialsOptions ssl;
  ssl.pem_root_certs = opts.ca_pem;
  ssl.pem_private_key = opts.key_pem;
  ssl.pem_cert_chain = opts.cert_pem;
  return grpc::SslCredentials(ssl);
}

std::shared_ptr<grpc::Channel> MakeChannel(const std::string& address, const std::string& name,
                                           const std::shared_ptr<grpc::ChannelCredentials>& creds,
                                           bool tls) {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_ENABLE_RETRIES, 0);
  args.SetInt(GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH, 64 << 20);
  // Each host gets its own channel and connection; don't share subchannels
  // through the global pool (it only adds locking at 1000s of hosts).
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  // Per-connection bookkeeping herd doesn't use: channelz nodes and BDP pings.
  args.SetInt(GRPC_ARG_ENABLE_CHANNELZ, 0);
  args.SetInt(GRPC_ARG_HTTP2_BDP_PROBE, 0);
  if (tls) args.SetSslTargetNameOverride(name);  // agents' certificates name them, not their IPs
  return grpc::CreateCustomChannel(ChannelTarget(address), creds, args);
}

namespace {

class GrpcAgentClient;

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
  void CancelAll() {
    std::lock_guard<std::mutex> l(mu_);
    for (auto* c : live_) c->TryCancel();
  }

 private:
  std::mutex mu_;  // guards live_ and calls_
  std::condition_variable idle_;
  std::set<grpc::ClientContext*> live_;
  int calls_ = 0;
};

template <typename Req, typename Reply>
struct UnaryCall {
  explicit UnaryCall(std::shared_ptr<ContextRegistry> r) : token(std::move(r)) {}
  ContextRegistry::Token token;  // first member: released last
  grpc::ClientContext ctx;
  Req req;  // must outlive the call: gRPC serialises it lazily
  Reply reply;
  AgentClient::Done<Reply> done;
};

class ExecReactor : public grpc::ClientReadReactor<v1::ExecEvent> {
 public:
  ExecReactor(std::shared_ptr<ContextRegistry> reg, std::function<void(const v1::ExecEvent&)> out,
              AgentClient::Done<v1::ExecResult> done)
      : token_(reg), reg_(std::move(reg)), on_output_(std::move(out)), done_(std::move(done)) {}

 private:
  ContextRegistry::Token token_;  // first member: released last

 public:
  grpc::ClientContext ctx;
  v1::ExecRequest req;  // must outlive the call: gRPC serialises it lazily

  void Begin() {
    StartRead(&event_);
    StartCall();
  }
  void OnReadDone(bool ok) override {
    if (!ok) return;  // OnDone follows with the status
    answered_ = true;
    if (event_.has_result()) {
      result_ = event_.result();
      have_result_ = true;
    } else {
      on_output_(event_);
    }
    StartRead(&event_);
  }
  void OnDone(const grpc::Status& s) override {
    reg_->Remove(&ctx);
    if (s.ok() && have_result_) {
      done_(std::move(result_));
    } else if (s.ok()) {
      done_(Status::Internal("agent ended Exec without a result"));
    } else {
      Status st = FromGrpc(s);
      if (answered_) st = Status(st.code(), "answered: " + st.message());
      done_(st);
    }
    delete this;
  }

 private:
  std::shared_ptr<ContextRegistry> reg_;
  std::function<void(const v1::ExecEvent&)> on_output_;
  AgentClient::Done<v1::ExecResult> done_;
  v1::ExecEvent event_;
  v1::ExecResult result_;
  bool answered_ = false, have_result_ = false;
};

class PutFileReactor : public grpc::ClientWriteReactor<v1::PutFileMessage> {
 public:
  static constexpr size_t kChunk = 256 * 1024;

  PutFileReactor(std::shared_ptr<ContextRegistry> reg, const v1::PutFileHeader& header,
                 std::shared_ptr<const std::string> content, AgentClient::Done<v1::PutFileReply> d)
      : token_(reg), reg_(std::move(reg)), content_(std::move(content)), done_(std::move(d)) {
    *msg_.mutable_header() = header;
  }

 private:
  ContextRegistry::Token token_;  // first member: released last

 public:
  grpc::ClientContext ctx;
  v1::PutFileReply reply;

  void Begin() {
    StartWrite(&msg_);
    StartCall();
  }
  void OnWriteDone(bool ok) override {
    if (!ok) return;  // stream broken: OnDone reports the status
    if (offset_ >= content_->size()) {
      StartWritesDone();
      return;
    }
    size_t n = std::min(kChunk, content_->size() - offset_);
    msg_.set_chunk(content_->data() + offset_, n);
    offset_ += n;
    StartWrite(&msg_);
  }
  void OnDone(const grpc::Status& s) override {
    reg_->Remove(&ctx);
    if (s.ok()) {
      done_(std::move(reply));
    } else {
      done_(FromGrpc(s));
    }
    delete this;
  }

 private:
  std::shared_ptr<ContextRegistry> reg_;
  std::shared_ptr<const std::string> content_;
  AgentClient::Done<v1::PutFileReply> done_;
  v1::PutFileMessage msg_;
  size_t offset_ = 0;
};

class GrpcAgentClient : public AgentClient {
 public:
  // `metadata` goes on every call (the mux reads the agent's address from it).
  explicit GrpcAgentClient(std::shared_ptr<grpc::Channel> channel,
                           std::vector<std::pair<std::string, std::string>> metadata = {})
      : metadata_(std::move(metadata)),
        channel_(channel),
        stub_(v1::Agent::NewStub(channel)),
        registry_(std::make_shared<ContextRegistry>()) {}
  ~GrpcAgentClient() override { registry_->WaitIdle(); }

  void Info(const CallOptions& o, Done<v1::InfoReply> done) override {
    Unary<v1::InfoRequest, v1::InfoReply>(o, std::move(done),
                                          [this](auto... a) { stub_->async()->Info(a...); });
  }
  void Facts(const CallOptions& o, Done<v1::FactsReply> done) override {
    Unary<v1::FactsRequest, v1::FactsReply>(o, std::move(done),
                                            [this](auto... a) { stub_->async()->Facts(a...); });
  }
  void Health(const CallOptions& o, Done<v1::HealthReply> done) override {
    Unary<v1::HealthRequest, v1::HealthReply>(o, std::move(done),
                                              [this](auto... a) { stub_->async()->Health(a...); });
  }

  void ReadAudit(const v1::ReadAuditRequest& req, const CallOptions& o,
                 Done<v1::ReadAuditReply> done) override {
    Unary<v1::ReadAuditRequest, v1::ReadAuditReply>(
        o, std::move(done), [this](auto... a) { stub_->async()->ReadAudit(a...); }, &req);
  }
  void SetRevocations(const v1::SetRevocationsRequest& req, const CallOptions& o,
                      Done<v1::SetRevocationsReply> done) override {
    Unary<v1::SetRevocationsRequest, v1::SetRevocationsReply>(
        o, std::move(done), [this](auto... a) { stub_->async()->SetRevocations(a...); }, &req);
  }

  void BeginEnroll(const v1::BeginEnrollRequest& req, const CallOptions& o,
                   Done<v1::BeginEnrollReply> done) override {
    Unary<v1::BeginEnrollRequest, v1::BeginEnrollReply>(
        o, std::move(done), [this](auto... a) { stub_->async()->BeginEnroll(a...); }, &req);
  }
  void CompleteEnroll(const v1::CompleteEnrollRequest& req, const CallOptions& o,
                      Done<v1::CompleteEnrollReply> done) override {
    Unary<v1::CompleteEnrollRequest, v1::CompleteEnrollReply>(
        o, std::move(done), [this](auto... a) { stub_->async()->CompleteEnroll(a...); }, &req);
  }

  void Exec(const v1::ExecRequest& req, const CallOptions& o,
            std::function<void(const v1::ExecEvent&)> on_output,
            Done<v1::ExecResult> done) override {
    auto* r = new ExecReactor(registry_, std::move(on_output), std::move(done));
    r->req = req;
    Prepare(r->ctx, o);
    registry_->Add(&r->ctx);
    stub_->async()->Exec(&r->ctx, &r->req, r);
    r->Begin();
  }

  void PutFile(const v1::PutFileHeader& header, std::shared_ptr<const std::string> content,
               const CallOptions& o, Done<v1::PutFileReply> done) override {
    auto* r = new PutFileReactor(registry_, header, std::move(content), std::move(done));
    Prepare(r->ctx, o);
    registry_->Add(&r->ctx);
    stub_->async()->PutFile(&r->ctx, &r->reply, r);
    r->Begin();
  }

  void CancelAll() override { registry_->CancelAll(); }

 private:
  template <typename Req, typename Reply, typename Method>
  void Unary(const CallOptions& o, Done<Reply> done, Method method, const Req* req = nullptr) {
    auto* call = new UnaryCall<Req, Reply>(registry_);
    if (req) call->req = *req;
    call->done = std::move(done);
    Prepare(call->ctx, o);
    registry_->Add(&call->ctx);
    auto reg = registry_;
    method(&call->ctx, &call->req, &call->reply,
           std::function<void(grpc::Status)>([call, reg](grpc::Status s) {
             reg->Remove(&call->ctx);
             if (s.ok()) {
               call->done(std::move(call->reply));
             } else {
               call->done(FromGrpc(s));
             }
             delete call;
           }));
  }

  void Prepare(grpc::ClientContext& ctx, const CallOptions& o) {
    ctx.set_deadline(o.deadline);
    for (const auto& [k, v] : metadata_) ctx.AddMetadata(k, v);
  }

  const std::vector<std::pair<std::string, std::string>> metadata_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::Agent::Stub> stub_;
  std::shared_ptr<ContextRegistry> registry_;
};

class GrpcClientFactory : public AgentClientFactory {
 public:
  explicit GrpcClientFactory(const TransportOptions& opts)
      : creds_(MakeCredentials(opts)), tls_(!opts.plaintext) {}
  std::unique_ptr<AgentClient> Connect(const std::string& address,
                                       const std::string& name) override {
    return std::make_unique<GrpcAgentClient>(MakeChannel(address, name, creds_, tls_));
  }

 private:
  std::shared_ptr<grpc::ChannelCredentials> creds_;
  bool tls_;
};

}  // namespace

Result<TransportOptions> LoadIdentity(const std::string& pki_dir, const std::string& name) {
  TransportOptions t;
  const std::string ca_path = pki_dir + "/ca.crt";
  const std::string cert_path = pki_dir + "/" + name + ".crt";
  const std::string key_path = pki_dir + "/" + name + ".key";
  auto ca = ReadFileToString(ca_path);
  auto cert = ReadFileToString(cert_path);
  auto key = ReadFileToString(key_path);
  for (const auto& [read, path] :
       {std::pair{&ca, &ca_path}, std::pair{&cert, &cert_path}, std::pair{&key, &key_path}}) {
    // A file that is there but cannot be read (permissions, a directory): say so.
    if (!read->ok() && ::access(path->c_str(), F_OK) == 0) return read->status();
  }
  if (!ca.ok() || !cert.ok() || !key.ok()) {
    return Status::NotFound("no identity '" + name + "' in " + pki_dir + " (need ca.crt, " + name +
                            ".crt, " + name + ".key: 'herd ca init', then 'herd cert issue " +
                            name + " --role ROLE'; --identity and --pki-dir choose another)");
  }
  // Broken files are named here: gRPC would only say "empty address list".
  if (auto c = pki::InspectCert(*ca); !c.ok()) {
    return Status::Invalid(ca_path + ": " + c.status().message());
  }
  if (auto c = pki::InspectCert(*cert); !c.ok()) {
    return Status::Invalid(cert_path + ": " + c.status().message());
  }
  auto key_pub = pki::PublicKeyPem(*key);
  if (!key_pub.ok()) return Status::Invalid(key_path + ": " + key_pub.status().message());
  auto cert_pub = pki::CertPublicKeyPem(*cert);
  if (!cert_pub.ok() || *cert_pub != *key_pub) {
    return Status::Invalid(key_path + " is not the key of " + cert_path);
  }
  t.ca_pem = std::move(*ca);
  t.cert_pem = std::move(*cert);
  t.key_pem = std::move(*key);
  return t;
}

std::unique_ptr<AgentClientFactory> MakeGrpcClientFactory(const TransportOptions& opts) {
  return std::make_unique<GrpcClientFactory>(opts);
}

namespace {

// Every host's calls go over one local connection to the mux, which forwards
// them to the agent named in the call's metadata.
class MuxClientFactory : public AgentClientFactory {
 public:
  explicit MuxClientFactory(const std::string& socket_path) {
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_ENABLE_RETRIES, 0);
    args.SetInt(GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH, 64 << 20);
    args.SetInt(GRPC_ARG_ENABLE_CHANNELZ, 0);
    channel_ =
        grpc::CreateCustomChannel("unix:" + socket_path, grpc::InsecureChannelCredentials(), args);
  }
  std::unique_ptr<AgentClient> Connect(const std::string& address,
                                       const std::string& name) override {
    return std::make_unique<GrpcAgentClient>(
        channel_, std::vector<std::pair<std::string, std::string>>{{kMuxAddressKey, address},
                                                                   {kMuxNameKey, name}});
  }

 private:
  std::shared_ptr<grpc::Channel> channel_;
};

}  // namespace

std::unique_ptr<AgentClientFactory> MakeMuxClientFactory(const std::string& socket_path) {
  return std::make_unique<MuxClientFactory>(socket_path);
}

}  // namespace herd::control

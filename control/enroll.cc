#include "control/enroll.h"

#include <grpc/grpc_security_constants.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/security/tls_certificate_verifier.h>
#include <grpcpp/security/tls_credentials_options.h>

#include <thread>

#include "control/grpc_util.h"
#include "herd/v1/agent.grpc.pb.h"

namespace herd::control {
namespace {

// TLS that accepts any server certificate: the join-token proof checked
// below is what authenticates the agent during enrolment.
std::shared_ptr<grpc::ChannelCredentials> EnrolmentCredentials() {
  grpc::experimental::TlsChannelCredentialsOptions opts;
  opts.set_verify_server_certs(false);
  opts.set_check_call_host(false);
  opts.set_certificate_verifier(std::make_shared<grpc::experimental::NoOpCertificateVerifier>());
  return grpc::experimental::TlsCredentials(opts);
}

Status CallError(const grpc::Status& s, const std::string& what, const std::string& address) {
  Status st = FromGrpc(s);
  if (st.code() == StatusCode::kUnavailable || st.code() == StatusCode::kDeadlineExceeded) {
    return Status(StatusCode::kUnavailable,
                  address + ": cannot reach the agent (is herdd running there?): " + st.message());
  }
  return Status(st.code(), address + ": " + what + ": " + st.message());
}

std::string PeerCertificate(const grpc::ClientContext& ctx) {
  auto auth = ctx.auth_context();
  if (!auth) return "";
  auto pems = auth->FindPropertyValues(GRPC_X509_PEM_CERT_PROPERTY_NAME);
  return pems.empty() ? "" : std::string(pems.front().data(), pems.front().size());
}

}  // namespace

Result<EnrollResult> EnrollAgent(const EnrollRequest& req, const FleetCa& ca) {
  auto spec = AgentCertSpec(req.name, req.days);
  if (!spec.ok()) return spec.status();
  if (req.token.empty()) return Status::Invalid("a join token is needed (--token)");
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_ENABLE_RETRIES, 0);
  auto channel =
      grpc::CreateCustomChannel(ChannelTarget(req.address), EnrolmentCredentials(), args);
  auto stub = v1::Agent::NewStub(channel);
  const auto deadline = std::chrono::system_clock::now() + req.timeout;

  v1::BeginEnrollRequest hello;
  hello.set_client_nonce(pki::RandomBytes(32));
  hello.set_client_proof(pki::EnrolClientProof(req.token, hello.client_nonce()));
  v1::BeginEnrollReply agent;
  grpc::ClientContext begin_ctx;
  begin_ctx.set_deadline(deadline);
  if (auto s = stub->BeginEnroll(&begin_ctx, hello, &agent); !s.ok()) {
    return CallError(s, "enrolment refused", req.address);
  }
  // The agent proves it holds the token, over the key it presented in TLS.
  const std::string expected = pki::EnrolAgentProof(req.token, hello.client_nonce(),
                                                    agent.agent_nonce(), agent.public_key_pem());
  if (!pki::ConstantTimeEquals(agent.agent_proof(), expected)) {
    return Status(StatusCode::kPermissionDenied,
                  req.address +
                      ": the agent could not prove it holds this join token; "
                      "not enrolling it (is this the device you meant?)");
  }
  const std::string peer = PeerCertificate(begin_ctx);
  if (peer.empty() || pki::CertPublicKeyPem(peer).value_or("") != agent.public_key_pem()) {
    return Status(StatusCode::kPermissionDenied,
                  req.address +
                      ": the TLS key of the endpoint is not the key the agent proved; "
                      "something sits between herd and the agent. Not enrolling it");
  }
  auto cert = pki::IssueCert(ca.cert_pem, ca.key_pem, agent.public_key_pem(), *spec);
  if (!cert.ok()) return cert.status();

  v1::CompleteEnrollRequest complete;
  complete.set_agent_nonce(agent.agent_nonce());
  complete.set_certificate_pem(*cert);
  complete.set_ca_pem(ca.cert_pem);
  complete.set_proof(pki::EnrolCompleteProof(req.token, agent.agent_nonce(), *cert, ca.cert_pem));
  v1::CompleteEnrollReply done;
  grpc::ClientContext complete_ctx;
  complete_ctx.set_deadline(deadline);
  if (auto s = stub->CompleteEnroll(&complete_ctx, complete, &done); !s.ok()) {
    return CallError(s, "the agent did not take its certificate", req.address);
  }
  auto info = pki::InspectCert(*cert);
  if (!info.ok()) return info.status();
  EnrollResult r;
  r.cert = *info;
  r.hostname = agent.hostname();
  r.reload_seconds = done.reload_seconds();
  return r;
}

Status WaitForMtls(const std::string& address, const std::string& name,
                   const TransportOptions& identity, std::chrono::milliseconds timeout) {
  auto creds = MakeCredentials(identity);
  const auto until = std::chrono::steady_clock::now() + timeout;
  grpc::Status last;
  for (int attempt = 0; std::chrono::steady_clock::now() < until && attempt < 1000; ++attempt) {
    // A new channel each time: a failed handshake must not be cached.
    auto stub = v1::Agent::NewStub(MakeChannel(address, name, creds, true));
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(2));
    v1::InfoReply reply;
    last = stub->Info(&ctx, v1::InfoRequest(), &reply);
    if (last.ok()) return Status::Ok();
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
  }
  return Status(StatusCode::kUnavailable, address + ": enrolled, but mTLS as " + name +
                                              " did not answer in time: " + last.error_message());
}

}  // namespace herd::control

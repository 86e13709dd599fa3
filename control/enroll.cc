#include "control/enroll.h"

#include <grpc/grpc_security_constants.h>
#include <grpcpp/grpcpp.h>
#include <sys/stat.h>

#include <cctype>
#include <thread>

#include "common/duration.h"
#include "common/file.h"
#include "common/key_value.h"
#include "control/inventory.h"
#include "control/revocation.h"
#include "herd/v1/agent.grpc.pb.h"
#include "proto/rpc/status_map.h"
#include "proto/rpc/transport.h"

namespace herd::control {
namespace {

Status CallError(const grpc::Status& s, const std::string& what, const std::string& address) {
  Status st = rpc::FromGrpc(s);
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
  // TLS that accepts any server certificate: the join-token proof checked
  // below is what authenticates the agent during enrolment.
  rpc::ChannelSpec channel;
  channel.address = req.address;
  auto stub = v1::Agent::NewStub(rpc::MakeChannel(channel, rpc::EnrolmentCredentials()));
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
  complete.set_revocations(req.revocations);
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
                   const rpc::TransportOptions& identity, std::chrono::milliseconds timeout) {
  auto creds = rpc::MakeCredentials(identity);
  rpc::ChannelSpec channel;
  channel.address = address;
  channel.tls_name = name;
  const auto until = std::chrono::steady_clock::now() + timeout;
  grpc::Status last;
  for (int attempt = 0; std::chrono::steady_clock::now() < until && attempt < 1000; ++attempt) {
    // A new channel each time: a failed handshake must not be cached.
    auto stub = v1::Agent::NewStub(rpc::MakeChannel(channel, creds));
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

namespace {

// Everything checked before the device is touched: a failure found after
// enrolling would leave an enrolled agent nobody can address.
Status Prepare(const EnrollOptions& opts, EnrollRequest* req, Host* host, FleetCa* ca) {
  req->name = opts.name;
  // The name goes into the certificate and the inventory: both must take it
  // before the token is spent.
  if (!ValidHostName(opts.name)) {
    return Status::Invalid("--name '" + opts.name.substr(0, 80) +
                           "' is not a host name the inventory takes (letters, digits, '-', "
                           "'_', '.', starting with a letter or digit; not 'all')");
  }
  if (auto spec = AgentCertSpec(opts.name, opts.days); !spec.ok()) return spec.status();
  req->days = opts.days;
  req->token = opts.token;
  if (!opts.token_file.empty()) {
    auto t = ReadFileToString(opts.token_file);
    if (!t.ok()) return Status::Invalid("--token-file: " + t.status().message());
    req->token = *t;
    while (!req->token.empty() && std::isspace(static_cast<unsigned char>(req->token.back()))) {
      req->token.pop_back();
    }
  }
  if (req->token.empty()) {
    return Status::Invalid(
        "enroll needs the join token: --token-file FILE, $HERD_JOIN_TOKEN or --token");
  }
  auto address = NormaliseAddress(opts.address);
  if (!address.ok()) return Status::Invalid("enroll: " + address.status().message());
  req->address = *address;
  *host = Host{req->name, req->address, {}, ""};
  if (!opts.metrics.empty()) {
    auto m = NormaliseAddress(opts.metrics, kDefaultMetricsPort);
    if (!m.ok()) return Status::Invalid("--metrics: " + m.status().message());
    host->metrics = *m;
  }
  for (const auto& text : opts.labels) {
    auto kv = ParseKeyValue(text);
    if (!kv.ok()) return Status::Invalid("--labels " + kv.status().message());
    host->labels[kv->first] = kv->second;
  }
  auto fleet_ca = LoadFleetCa(opts.pki_dir);
  if (!fleet_ca.ok()) return fleet_ca.status();
  *ca = std::move(*fleet_ca);
  // The device takes the fleet's revocation list with its certificate.
  auto revocations = LoadRevocations(opts.pki_dir);
  if (!revocations.ok()) return revocations.status();
  req->revocations = revocations->Text();
  if (!opts.add_to_inventory) return Status::Ok();
  struct stat st {};
  if (::stat(opts.inventory_path.c_str(), &st) == 0) {
    auto inv = LoadInventory(opts.inventory_path);
    if (!inv.ok()) return inv.status();
    if (const Host* h = inv->FindHost(req->name); h && h->address != req->address) {
      return Status::Invalid(opts.inventory_path + " already has a host named " + req->name +
                             " at " + h->address + "; choose another --name");
    }
  }
  if (Status s = CheckInventoryWritable(opts.inventory_path); !s.ok()) {
    return Status(s.code(), s.message() + " (nothing was enrolled; -i FILE or --no-inventory)");
  }
  return Status::Ok();
}

}  // namespace

EnrollReport EnrollDevice(const EnrollOptions& opts) {
  EnrollReport report;
  auto fail = [&](ExitCode exit, Status s) {
    report.exit = exit;
    report.status = std::move(s);
    return report;
  };
  EnrollRequest req;
  Host host;
  FleetCa ca;
  if (Status s = Prepare(opts, &req, &host, &ca); !s.ok()) return fail(ExitCode::kHerdError, s);
  auto res = EnrollAgent(req, ca);
  if (!res.ok()) {
    return fail(res.status().code() == StatusCode::kUnavailable ? ExitCode::kHostUnreachable
                                                                : ExitCode::kHostFailed,
                res.status());
  }
  report.name = req.name;
  report.address = req.address;
  report.hostname = res->hostname;
  report.cert = res->cert;
  report.inventory_note = "not added to the inventory (--no-inventory)";
  if (opts.add_to_inventory) {
    Status s = AddHostToInventoryFile(opts.inventory_path, host);
    if (s.code() == StatusCode::kAlreadyExists) {
      report.inventory_note = "already in " + opts.inventory_path;
    } else if (!s.ok()) {
      return fail(ExitCode::kHerdError,
                  Status(s.code(), "enrolled, but the inventory was not updated: " + s.message()));
    } else {
      report.inventory_note = "added to " + opts.inventory_path;
    }
  }
  report.serving = "not waited for (--no-wait)";
  if (opts.wait) {
    auto id = rpc::LoadIdentity(opts.pki_dir, opts.identity);
    if (!id.ok()) {
      report.serving = "not checked (no identity '" + opts.identity + "' to check with)";
    } else {
      Status s = WaitForMtls(req.address, req.name, *id,
                             std::chrono::seconds(res->reload_seconds) + std::chrono::seconds(15));
      if (!s.ok()) return fail(ExitCode::kHerdError, s);
      report.serving = "serving mTLS";
    }
  }
  return report;
}

Record EnrollRecord(const EnrollReport& r) {
  const std::string until = UtcDate(r.cert.not_after);
  Record rec;
  rec.json = {{"host", r.name},     {"address", r.address},   {"serial", r.cert.serial},
              {"not_after", until}, {"hostname", r.hostname}, {"inventory", r.inventory_note},
              {"status", r.serving}};
  rec.text = "enrolled " + r.name + " at " + r.address + " (device " + r.hostname +
             "): certificate " + r.cert.serial + " valid until " + until + "; " + r.inventory_note +
             "; " + r.serving;
  return rec;
}

}  // namespace herd::control

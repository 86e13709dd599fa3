#include "proto/rpc/transport.h"

#include <grpcpp/create_channel.h>
#include <grpcpp/security/tls_certificate_verifier.h>
#include <grpcpp/security/tls_credentials_options.h>
#include <grpcpp/support/channel_arguments.h>

namespace herd::rpc {

std::shared_ptr<grpc::ChannelCredentials> MakeCredentials(const TransportOptions& opts) {
  if (opts.plaintext) return grpc::InsecureChannelCredentials();
  grpc::SslCredentialsOptions ssl;
  ssl.pem_root_certs = opts.ca_pem;
  ssl.pem_private_key = opts.key_pem;
  ssl.pem_cert_chain = opts.cert_pem;
  return grpc::SslCredentials(ssl);
}

std::shared_ptr<grpc::ChannelCredentials> EnrolmentCredentials() {
  grpc::experimental::TlsChannelCredentialsOptions opts;
  opts.set_verify_server_certs(false);
  opts.set_check_call_host(false);
  opts.set_certificate_verifier(std::make_shared<grpc::experimental::NoOpCertificateVerifier>());
  return grpc::experimental::TlsCredentials(opts);
}

std::string ChannelTarget(const std::string& address) {
  if (address.rfind("unix:", 0) == 0) return address;
  const std::string host = address.substr(0, address.rfind(':'));
  if (!host.empty() && host.front() == '[') return "ipv6:" + address;
  if (!host.empty() && host.find_first_not_of("0123456789.") == std::string::npos) {
    return "ipv4:" + address;
  }
  return "dns:///" + address;
}

std::shared_ptr<grpc::Channel> MakeChannel(const ChannelSpec& spec,
                                           const std::shared_ptr<grpc::ChannelCredentials>& creds) {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_ENABLE_RETRIES, 0);
  args.SetInt(GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH, 64 << 20);
  if (spec.own_subchannel_pool) args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  // Per-connection bookkeeping herd doesn't use: channelz nodes and BDP pings.
  args.SetInt(GRPC_ARG_ENABLE_CHANNELZ, 0);
  if (!spec.bdp_probe) args.SetInt(GRPC_ARG_HTTP2_BDP_PROBE, 0);
  // A peer that comes back is reached within about a second of answering:
  // gRPC's own backoff grows to two minutes, which kept a warm channel (the
  // mux's) "unreachable" for 89 s after a four-minute outage.
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 250);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
  if (!spec.tls_name.empty()) args.SetSslTargetNameOverride(spec.tls_name);
  return grpc::CreateCustomChannel(ChannelTarget(spec.address), creds, args);
}

}  // namespace herd::rpc

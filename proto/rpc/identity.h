// Who a process is on herd's gRPC transport: the fleet CA it trusts and the
// certificate and key it presents, loaded from a PKI folder. Plain values;
// no gRPC headers, so that code above the transport can hold one.
#pragma once

#include <string>

#include "common/status.h"

namespace herd::rpc {

struct TransportOptions {
  bool plaintext = false;         // development only: agents started with --plaintext
  std::string ca_pem;             // fleet CA: peers must present a certificate it signed
  std::string cert_pem, key_pem;  // this caller's identity (its role is inside the cert)
};

// Loads the identity NAME (NAME.crt, NAME.key) and ca.crt from a PKI folder.
// Broken files are named (an unparsable certificate, a key that is not the
// certificate's, an unreadable file) rather than left for gRPC to report as
// "empty address list".
Result<TransportOptions> LoadIdentity(const std::string& pki_dir, const std::string& name);

}  // namespace herd::rpc

// Enrolment from the operator's side: `herd enroll ADDRESS --token T --name N`.
//
// Dials the fresh agent over TLS without checking its certificate (it has
// only a self-signed one yet) and authenticates it by the join token instead:
// the agent must prove it holds the token over the very key it presents in
// the TLS handshake, so a machine in the middle cannot get its own key signed.
// Then signs a certificate for that key with the fleet CA and hands it over
// with the CA bundle. The device's private key never leaves it and the token
// never crosses the wire (see docs/security.md). Synchronous; CLI thread only.
#pragma once

#include <chrono>
#include <string>

#include "common/pki.h"
#include "common/status.h"
#include "control/agent_client.h"
#include "control/pki_store.h"

namespace herd::control {

struct EnrollRequest {
  std::string address;  // host:port of the agent
  std::string name;     // fleet name: CN and DNS SAN of its certificate
  std::string token;    // the agent's join token
  int days = 365;       // certificate lifetime
  std::chrono::milliseconds timeout{10'000};
};

struct EnrollResult {
  pki::CertInfo cert;  // what the agent installed
  std::string hostname;
  uint32_t reload_seconds = 0;  // the agent serves it within this time
};

Result<EnrollResult> EnrollAgent(const EnrollRequest& req, const FleetCa& ca);

// Polls Info over mTLS (as `identity`) until the agent at `address` presents
// a fleet certificate for `name`, or `timeout` passes.
Status WaitForMtls(const std::string& address, const std::string& name,
                   const TransportOptions& identity, std::chrono::milliseconds timeout);

}  // namespace herd::control

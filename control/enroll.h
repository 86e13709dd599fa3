// Enrolment from the operator's side: `herd enroll ADDRESS --token T --name N`.
//
// Dials the fresh agent over TLS without checking its certificate (it has
// only a self-signed one yet) and authenticates it by the join token instead:
// the agent must prove it holds the token over the very key it presents in
// the TLS handshake, so a machine in the middle cannot get its own key signed.
// Then signs a certificate for that key with the fleet CA and hands it over
// with the CA bundle. The device's private key never leaves it and the token
// never crosses the wire (see docs/security.md). EnrollDevice is all of
// `herd enroll`: it checks what it can before touching the device (token,
// addresses, labels, the fleet CA, the inventory's name clash and
// writability), enrols, adds the host to the inventory and waits until the
// agent serves mTLS. Synchronous; CLI thread only.
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "common/defaults.h"
#include "common/pki.h"
#include "common/status.h"
#include "control/host_result.h"
#include "control/output.h"
#include "control/pki_store.h"
#include "proto/rpc/identity.h"

namespace herd::control {

struct EnrollRequest {
  std::string address;  // host:port of the agent
  std::string name;     // fleet name: CN and DNS SAN of its certificate
  std::string token;    // the agent's join token
  int days = 365;       // certificate lifetime
  std::chrono::milliseconds timeout = kDefaultHostTimeout;
  std::string revocations;  // the fleet's signed revocation list, installed with it ("" none)
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
                   const rpc::TransportOptions& identity, std::chrono::milliseconds timeout);

struct EnrollOptions {
  std::string address;              // host[:port] of the agent
  std::string name;                 // its fleet name
  std::string token;                // the join token, or...
  std::string token_file;           // ...a file holding it (trailing white space ignored)
  std::vector<std::string> labels;  // inventory labels, KEY=VALUE each
  std::string metrics;              // its /metrics host[:port] ("": the address's host)
  int days = 365;
  std::string pki_dir;         // holds the fleet CA (and `identity`, to check mTLS with)
  std::string identity;        // who checks that the agent serves mTLS afterwards
  std::string inventory_path;  // where the host is added
  bool add_to_inventory = true;
  bool wait = true;  // until the agent serves mTLS
};

struct EnrollReport {
  // kOk, kHerdError (nothing was enrolled, or enrolled but the inventory or
  // the mTLS check failed), kHostFailed (the device refused), or
  // kHostUnreachable.
  ExitCode exit = ExitCode::kOk;
  Status status;  // why not ok
  std::string name, address, hostname;
  pki::CertInfo cert;
  std::string inventory_note;  // "added to FILE", "already in FILE", ...
  std::string serving;         // "serving mTLS", "not waited for (--no-wait)", ...
};
EnrollReport EnrollDevice(const EnrollOptions& opts);
// What `herd enroll` prints of a successful enrolment.
Record EnrollRecord(const EnrollReport& r);

}  // namespace herd::control

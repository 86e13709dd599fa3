// The operator's credential folder: the fleet CA and the client certificates
// herd issues. Files: ca.key (0600), ca.crt, NAME.key (0600), NAME.crt.
// Nothing here overwrites an existing key. Called from the CLI thread only.
#pragma once

#include <string>
#include <vector>

#include "common/pki.h"
#include "common/status.h"

namespace herd::control {

// --pki-dir if given, else $HERD_PKI_DIR, else $XDG_CONFIG_HOME/herd/pki
// (~/.config/herd/pki).
std::string ResolvePkiDir(const std::string& explicit_dir);

// A name herd issues certificates for: letters, digits, '-', '_', '.', '@',
// not starting with '.' or '-', at most 64 characters, not "ca".
bool ValidCertName(const std::string& name);

struct IssuedFiles {
  std::string key_path, cert_path;
  pki::CertInfo info;
};

// Creates the folder (0700) and a new fleet CA in it; refuses if one exists.
Result<IssuedFiles> InitFleetCa(const std::string& dir, const std::string& name, int days);

// Issues a client certificate for a person or pipeline, signed by the CA in
// `dir`, with its role in the certificate. Writes NAME.key and NAME.crt into
// `out_dir` (default: `dir`).
Result<IssuedFiles> IssueClientCert(const std::string& dir, const std::string& name, pki::Role role,
                                    int days, const std::string& out_dir);

struct FleetCa {
  std::string cert_pem, key_pem;
};
// The CA certificate and key in `dir`; errors say what is missing.
Result<FleetCa> LoadFleetCa(const std::string& dir);

// What an agent's certificate holds: its inventory name as CN and DNS SAN
// (the CLI checks the agent against the name it dialled), serverAuth.
Result<pki::CertSpec> AgentCertSpec(const std::string& name, int days);

// Issues an agent's server certificate (subjectAltName DNS:NAME, the host's
// inventory name) and writes agent.key, agent.crt and a copy of ca.crt into
// `out_dir` (default: DIR/agents/NAME): what herdd --tls-dir reads.
Result<IssuedFiles> IssueAgentCert(const std::string& dir, const std::string& name, int days,
                                   const std::string& out_dir);

struct IdentityInfo {
  std::string name, cert_path;
  pki::CertInfo info;
  bool revoked = false;
};
// Every certificate in the folder (NAME.crt), the CA first, sorted by name.
Result<std::vector<IdentityInfo>> ListIdentities(const std::string& dir);

}  // namespace herd::control

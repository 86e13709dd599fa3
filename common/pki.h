// Fleet PKI helpers (OpenSSL): P-256 keys, the fleet CA, certificates that
// carry a herd role, and inspection of certificates presented by peers.
// Stateless functions; safe from any thread.
#pragma once

#include <ctime>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace herd::pki {

// Roles, each including the ones before it.
enum class Role { kViewer = 0, kOperator = 1, kAdmin = 2 };
const char* RoleName(Role r);
Result<Role> ParseRole(const std::string& name);
inline bool RoleAllows(Role have, Role need) {
  return static_cast<int>(have) >= static_cast<int>(need);
}

// A new ECDSA P-256 private key, PEM (PKCS#8).
Result<std::string> GenerateKeyPem();
// The public half of a private key, PEM.
Result<std::string> PublicKeyPem(const std::string& key_pem);

// A self-signed CA certificate for `key_pem`: CA:TRUE, keyCertSign, cRLSign.
Result<std::string> SelfSignedCa(const std::string& key_pem, const std::string& name, int days);

struct CertSpec {
  std::string common_name;
  std::optional<Role> role;            // carried as the subject's OU
  std::vector<std::string> dns_names;  // subjectAltName DNS entries (agents)
  int days = 365;
  bool server = false;  // serverAuth (agents) vs clientAuth (people, CI)
};

// A self-signed serverAuth certificate for `key_pem` (not a CA): what a fresh
// agent presents while it waits to be enrolled.
Result<std::string> SelfSignedCert(const std::string& key_pem, const std::string& name, int days);

// The public key inside a certificate, PEM (the form PublicKeyPem returns).
Result<std::string> CertPublicKeyPem(const std::string& cert_pem);

// Signs a certificate for `public_key_pem` with the CA.
Result<std::string> IssueCert(const std::string& ca_cert_pem, const std::string& ca_key_pem,
                              const std::string& public_key_pem, const CertSpec& spec);

struct CertInfo {
  std::string common_name;
  std::optional<Role> role;
  std::string serial;  // hex
  std::time_t not_before = 0, not_after = 0;
  bool is_ca = false;
};
Result<CertInfo> InspectCert(const std::string& cert_pem);

// True when `cert_pem` was signed by the CA in `ca_cert_pem` and is in date.
Status VerifyCert(const std::string& ca_cert_pem, const std::string& cert_pem);

// ECDSA-SHA256 signature of `data` with the private key (DER), and its check
// against the public key of `cert_pem` (kPermissionDenied when it fails).
Result<std::string> Sign(const std::string& key_pem, std::string_view data);
Status VerifySignature(const std::string& cert_pem, std::string_view data,
                       const std::string& signature);

// A certificate serial the one way herd writes it everywhere (the revocation
// list, the CLI, the agent's check): upper-case hex without leading zeros,
// separators (':', '-', spaces) dropped. InspectCert's serials are in this
// form. Errors name what is not a serial.
Result<std::string> NormaliseSerial(std::string_view text);

// Cryptographic randomness, `n` raw bytes.
std::string RandomBytes(size_t n);
// A join token: 32 characters of base32 (160 random bits).
std::string RandomToken();
// HMAC-SHA256 of `msg` keyed with `key`, 32 raw bytes.
std::string HmacSha256(const std::string& key, const std::string& msg);
// Fields joined unambiguously for a MAC: each prefixed with its length as
// 4 bytes, big-endian.
std::string Framed(std::initializer_list<std::string_view> fields);
// The join-token proofs of enrolment (docs/security.md), computed the same
// way by herd and herdd: HMAC-SHA256(token, Framed(label, fields...)).
std::string EnrolClientProof(const std::string& token, const std::string& client_nonce);
std::string EnrolAgentProof(const std::string& token, const std::string& client_nonce,
                            const std::string& agent_nonce, const std::string& public_key_pem);
std::string EnrolCompleteProof(const std::string& token, const std::string& agent_nonce,
                               const std::string& cert_pem, const std::string& ca_pem);
// Compares in time independent of where the inputs differ.
bool ConstantTimeEquals(const std::string& a, const std::string& b);

// Writes `content` to `path` with `mode`, refusing to replace an existing file.
Status WriteNewFile(const std::string& path, const std::string& content, unsigned mode);

}  // namespace herd::pki

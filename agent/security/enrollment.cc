#include "agent/security/enrollment.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <ctime>

#include "common/file.h"

namespace herd::agent {
namespace {

constexpr size_t kNonceBytes = 32;
constexpr size_t kMinTokenChars = 16;
constexpr int kFreeFailures = 5;
constexpr auto kPendingFor = std::chrono::minutes(10);

bool Exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

std::string Trim(std::string s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.pop_back();
  size_t i = 0;
  while (i < s.size() && std::isspace(static_cast<unsigned char>(s[i]))) ++i;
  return s.substr(i);
}

}  // namespace

Result<std::unique_ptr<Enrollment>> Enrollment::Open(const TlsFiles& tls, const std::string& token,
                                                     const std::string& token_file,
                                                     const std::string& name) {
  std::unique_ptr<Enrollment> e(new Enrollment());
  e->files_ = tls;
  e->token_file_ = token_file;
  const bool have_key = Exists(tls.key);
  const std::string key_dir =
      tls.key.substr(0, tls.key.rfind('/') == std::string::npos ? 0 : tls.key.rfind('/'));
  if (!have_key && !key_dir.empty() && !Exists(key_dir)) {
    return Status::NotFound("TLS folder " + key_dir + " does not exist");
  }
  if (!have_key) {
    if (Exists(tls.cert) || Exists(tls.ca)) {
      return Status::Invalid("TLS key " + tls.key + " is missing but " + tls.cert + " or " +
                             tls.ca + " exist: restore the key, or remove them to enrol afresh");
    }
    auto key = pki::GenerateKeyPem();
    if (!key.ok()) return key.status();
    if (Status s = pki::WriteNewFile(tls.key, *key, 0600); !s.ok()) return s;
  }
  struct stat st {};
  if (::stat(tls.key.c_str(), &st) == 0 && (st.st_mode & 077) != 0) {
    return Status::Invalid("TLS key " + tls.key + " is readable by group or others; chmod 600 it");
  }
  auto key = ReadFileToString(tls.key);
  if (!key.ok()) return Status::NotFound("TLS key: " + key.status().message());
  auto pub = pki::PublicKeyPem(*key);
  if (!pub.ok()) return Status::Invalid("TLS key " + tls.key + ": " + pub.status().message());
  e->public_key_pem_ = *pub;

  auto cert = ReadFileToString(tls.cert);
  const bool cert_matches = cert.ok() && pki::CertPublicKeyPem(*cert).value_or("") == *pub;
  if (Exists(tls.ca)) {
    auto ca = ReadFileToString(tls.ca);
    if (!ca.ok()) return Status::NotFound("TLS CA: " + ca.status().message());
    if (!cert.ok()) return Status::NotFound("TLS certificate: " + cert.status().message());
    if (!cert_matches) {
      return Status::Invalid("TLS certificate " + tls.cert + " is not for the key " + tls.key);
    }
    e->ca_pem_ = *ca;
    e->enrolled_ = true;
    return e;
  }
  // Not enrolled: a self-signed certificate for the device key, and a token.
  if (!cert_matches) {
    auto self = pki::SelfSignedCert(*key, name, 3650);
    if (!self.ok()) return self.status();
    if (Status s = WriteFileAtomic(tls.cert, *self, 0644); !s.ok()) return s;
  }
  if (!token.empty()) {
    e->token_ = token;
  } else if (auto t = ReadFileToString(token_file); t.ok()) {
    e->token_ = Trim(*t);
  } else {
    e->token_ = pki::RandomToken();
    if (Status s = pki::WriteNewFile(token_file, e->token_ + "\n", 0600); !s.ok()) return s;
    e->new_token_ = e->token_;
  }
  if (e->token_.size() < kMinTokenChars) {
    return Status::Invalid("the join token must have at least " + std::to_string(kMinTokenChars) +
                           " characters (leave it unset and herdd makes a strong one)");
  }
  return e;
}

bool Enrollment::enrolled() const {
  std::lock_guard<std::mutex> l(mu_);
  return enrolled_;
}

std::string Enrollment::ca_pem() const {
  std::lock_guard<std::mutex> l(mu_);
  return ca_pem_;
}

Status Enrollment::CheckLockoutLocked(std::chrono::steady_clock::time_point now) const {
  if (now >= locked_until_) return Status::Ok();
  auto secs = std::chrono::duration_cast<std::chrono::seconds>(locked_until_ - now).count() + 1;
  return Status(
      StatusCode::kResourceExhausted,
      "too many failed enrolment attempts; enrolment is locked for " + std::to_string(secs) + " s");
}

Status Enrollment::FailLocked(std::chrono::steady_clock::time_point now, const std::string& why) {
  ++failures_;
  if (failures_ > kFreeFailures) {
    const int shift = std::min(failures_ - kFreeFailures, 9);
    locked_until_ = now + std::chrono::seconds(std::min(300, 1 << shift));
  }
  return Status(StatusCode::kPermissionDenied, why);
}

Result<Enrollment::Hello> Enrollment::Begin(const std::string& client_nonce,
                                            const std::string& client_proof, bool admin) {
  const auto now = std::chrono::steady_clock::now();
  std::lock_guard<std::mutex> l(mu_);
  Hello h;
  h.enrolled = enrolled_;
  if (!admin) {
    if (enrolled_) {
      return Status(StatusCode::kFailedPrecondition,
                    "this agent is already enrolled and its join token is used up; renew its "
                    "certificate with 'herd cert renew', or reset the agent to enrol it again");
    }
    if (Status s = CheckLockoutLocked(now); !s.ok()) return s;
    if (client_nonce.size() != kNonceBytes) {
      return Status::Invalid("client nonce must be " + std::to_string(kNonceBytes) + " bytes");
    }
    // A proof seen before is a replay (only someone in the middle of an
    // earlier attempt could have it): refused like a wrong token.
    if (used_nonces_.count(client_nonce)) return FailLocked(now, "replayed enrolment request");
    if (!pki::ConstantTimeEquals(client_proof, pki::EnrolClientProof(token_, client_nonce))) {
      return FailLocked(now, "wrong join token");
    }
    if (used_nonces_.size() >= 4096) used_nonces_.clear();
    used_nonces_.insert(client_nonce);
  }
  pending_nonce_ = pki::RandomBytes(kNonceBytes);
  pending_until_ = now + kPendingFor;
  h.agent_nonce = pending_nonce_;
  h.public_key_pem = public_key_pem_;
  if (!admin) {
    h.agent_proof = pki::EnrolAgentProof(token_, client_nonce, pending_nonce_, public_key_pem_);
  }
  return h;
}

Result<Enrollment::Installed> Enrollment::Complete(const std::string& agent_nonce,
                                                   const std::string& cert_pem,
                                                   const std::string& ca_pem,
                                                   const std::string& proof, bool admin) {
  const auto now = std::chrono::steady_clock::now();
  std::lock_guard<std::mutex> l(mu_);
  if (!admin && enrolled_) {
    return Status(StatusCode::kFailedPrecondition,
                  "this agent is already enrolled and its join token is used up");
  }
  if (!admin) {
    if (Status s = CheckLockoutLocked(now); !s.ok()) return s;
  }
  if (pending_nonce_.empty() || now > pending_until_ ||
      !pki::ConstantTimeEquals(agent_nonce, pending_nonce_)) {
    return Status(StatusCode::kFailedPrecondition,
                  "no enrolment in progress for this nonce (call BeginEnroll again)");
  }
  if (!admin) {
    if (!pki::ConstantTimeEquals(proof,
                                 pki::EnrolCompleteProof(token_, agent_nonce, cert_pem, ca_pem))) {
      return FailLocked(now, "wrong join token");
    }
  }
  auto ca = pki::InspectCert(ca_pem);
  if (!ca.ok() || !ca->is_ca) return Status::Invalid("the CA bundle is not a CA certificate");
  if (enrolled_ &&
      pki::CertPublicKeyPem(ca_pem).value_or("") != pki::CertPublicKeyPem(ca_pem_).value_or("-")) {
    return Status(StatusCode::kFailedPrecondition,
                  "renewal must keep the fleet CA this agent already trusts");
  }
  auto info = pki::InspectCert(cert_pem);
  if (!info.ok()) return Status::Invalid("certificate: " + info.status().message());
  const std::time_t wall = std::time(nullptr);
  if (info->is_ca) return Status::Invalid("the agent certificate must not be a CA");
  if (info->not_before > wall + 300 || info->not_after < wall + 60) {
    return Status::Invalid("the certificate is not valid now (check the clocks)");
  }
  if (Status v = pki::VerifyCert(ca_pem, cert_pem); !v.ok()) {
    return Status::Invalid("certificate is not signed by the given CA: " + v.message());
  }
  if (pki::CertPublicKeyPem(cert_pem).value_or("") != public_key_pem_) {
    return Status::Invalid("certificate is not for this device's key");
  }
  // The certificate first (same key, so TLS may pick it up at any moment),
  // then the CA, whose presence marks the agent enrolled after a restart.
  if (Status s = WriteFileAtomic(files_.cert, cert_pem, 0644); !s.ok()) return s;
  Installed out;
  out.cert = *info;
  out.renewal = enrolled_;
  if (!enrolled_) {
    if (Status s = WriteFileAtomic(files_.ca, ca_pem, 0644); !s.ok()) return s;
    if (!token_file_.empty()) ::unlink(token_file_.c_str());
    token_.assign(token_.size(), '\0');
    enrolled_ = true;
    ca_pem_ = ca_pem;
  }
  pending_nonce_.clear();
  failures_ = 0;
  return out;
}

}  // namespace herd::agent

#include "agent/security/authz.h"

#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <ctime>
#include <sstream>

#include "common/file.h"
#include "common/hash.h"
#include "common/method_name.h"

namespace herd::agent {

Authorizer::Authorizer(const Enrollment* enrollment, const std::string& state_dir, AuditLog& audit)
    : enrollment_(enrollment),
      signed_path_(state_dir + "/revocations"),
      legacy_path_(state_dir + "/revoked"),
      audit_(audit) {}

Status Authorizer::LoadRevoked() {
  auto signed_text = ReadFileToString(signed_path_);
  if (signed_text.ok()) {
    auto list = ParseRevocationList(*signed_text, signed_path_);
    if (!list.ok())
      return Status(list.status().code(),
                    list.status().message() + " (refusing to start without it)");
    if (enrollment_ && enrollment_->enrolled()) {
      if (Status v = VerifyRevocationList(*list, enrollment_->ca_pem()); !v.ok()) {
        return Status(v.code(), signed_path_ + ": " + v.message() + " (refusing to start)");
      }
    }
    std::lock_guard<std::mutex> l(mu_);
    revoked_ = std::move(list->serials);
    revocation_version_ = list->version;
    return Status::Ok();
  }
  if (::access(signed_path_.c_str(), F_OK) == 0 || errno != ENOENT) {
    return Status::Internal("revocation list " + signed_path_ + ": " +
                            signed_text.status().message() + " (refusing to start without it)");
  }
  auto text = ReadFileToString(legacy_path_);
  if (!text.ok()) {
    if (::access(legacy_path_.c_str(), F_OK) != 0 && errno == ENOENT) return Status::Ok();
    return Status::Internal("revocation list " + legacy_path_ + ": " + text.status().message() +
                            " (refusing to start without it)");
  }
  std::set<std::string> serials;
  std::istringstream in(*text);
  int line_no = 0;
  for (std::string line; std::getline(in, line);) {
    ++line_no;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    auto serial = pki::NormaliseSerial(line);
    if (!serial.ok()) {
      return Status::Invalid(legacy_path_ + ":" + std::to_string(line_no) + ": '" +
                             line.substr(0, 64) + "' is not a certificate serial (hex)");
    }
    serials.insert(*serial);
  }
  std::lock_guard<std::mutex> l(mu_);
  revoked_ = std::move(serials);
  revocation_version_ = 0;
  return Status::Ok();
}

void Authorizer::Allow(const std::vector<MethodPolicy>& policies) {
  for (const auto& p : policies) policies_.emplace(std::string(p.method), p);
}

const MethodPolicy* Authorizer::PolicyFor(std::string_view method) const {
  auto it = policies_.find(method);
  return it == policies_.end() ? nullptr : &it->second;
}

Status Authorizer::Deny(const Caller& who, std::string_view method, StatusCode code,
                        const std::string& msg) {
  AuditEntry e{who.name, who.serial.empty() ? "" : pki::RoleName(who.role),
               std::string(ShortMethodName(method)), "", "denied: " + msg};
  // Refusals go apart, at a bounded rate per caller; without a certificate
  // that verified, the caller is nobody we know and shares one budget.
  (void)audit_.AppendRefusal(std::move(e), who.serial);
  return Status(code, msg);
}

Result<Caller> Authorizer::Check(std::string_view peer, std::string_view cert_pem,
                                 std::string_view method) {
  Caller who;
  const std::string short_name(ShortMethodName(method));
  const MethodPolicy* policy = PolicyFor(method);
  if (policy == nullptr) {
    who.name = (enrollment_ ? "anonymous:" : "plaintext:") + std::string(peer);
    return Deny(who, method, StatusCode::kPermissionDenied,
                short_name + " has no access policy on this agent: refused for every caller");
  }
  if (enrollment_ == nullptr) {
    who.name = "plaintext:" + std::string(peer);
    who.role = pki::Role::kAdmin;
    return who;
  }
  if (!enrollment_->enrolled()) {
    if (policy->enrolment) {
      who.name = "join-token:" + std::string(peer);
      who.join_token = true;
      return who;
    }
    who.name = "anonymous:" + std::string(peer);
    return Deny(who, method, StatusCode::kFailedPrecondition,
                "this agent is not enrolled in a fleet yet: enrol it with 'herd enroll ADDRESS "
                "--token TOKEN --name NAME'");
  }
  who.name = "anonymous:" + std::string(peer);
  if (cert_pem.empty() && policy->enrolment) {
    return Deny(who, method, StatusCode::kFailedPrecondition,
                "this agent is already enrolled and its join token is used up; renew its "
                "certificate with 'herd cert renew', or reset the agent to enrol it again");
  }
  if (cert_pem.empty()) {
    return Deny(who, method, StatusCode::kUnauthenticated,
                "no client certificate: herd needs one from the fleet CA (herd cert issue)");
  }
  const std::string pem(cert_pem);
  const std::string key = Sha256Hex(pem);
  std::optional<pki::CertInfo> info;
  {
    std::lock_guard<std::mutex> l(mu_);
    auto it = verified_.find(key);
    if (it != verified_.end()) info = it->second;
  }
  if (!info) {
    auto parsed = pki::InspectCert(pem);
    if (!parsed.ok()) {
      return Deny(who, method, StatusCode::kUnauthenticated, "unreadable client certificate");
    }
    // A name from a certificate this agent does not accept is only a claim.
    who.name = "unverified:" + parsed->common_name;
    Status v = pki::VerifyCert(enrollment_->ca_pem(), pem);
    if (!v.ok()) {
      return Deny(who, method, StatusCode::kUnauthenticated,
                  "client certificate '" + parsed->common_name +
                      "' is not valid for this fleet: " + v.message());
    }
    info = *parsed;
    std::lock_guard<std::mutex> l(mu_);
    if (verified_.size() > 1000) verified_.clear();
    verified_[key] = *info;
  }
  who.name = info->common_name;
  who.serial = info->serial;
  if (info->role) who.role = *info->role;  // recorded with any denial below
  if (std::time(nullptr) > info->not_after) {
    return Deny(who, method, StatusCode::kUnauthenticated,
                "client certificate '" + who.name + "' has expired");
  }
  if (IsRevoked(info->serial)) {
    return Deny(who, method, StatusCode::kUnauthenticated,
                "client certificate '" + who.name + "' (serial " + info->serial + ") is revoked");
  }
  if (!info->role) {
    return Deny(who, method, StatusCode::kPermissionDenied,
                "client certificate '" + who.name + "' carries no herd role");
  }
  who.role = *info->role;
  if (!pki::RoleAllows(who.role, policy->role)) {
    return Deny(who, method, StatusCode::kPermissionDenied,
                short_name + " needs role " + pki::RoleName(policy->role) + "; '" + who.name +
                    "' has role " + pki::RoleName(who.role));
  }
  return who;
}

bool Authorizer::IsRevoked(const std::string& serial) {
  auto normal = pki::NormaliseSerial(serial);
  std::lock_guard<std::mutex> l(mu_);
  return revoked_.count(normal.value_or(serial)) > 0;
}

uint64_t Authorizer::revocation_version() {
  std::lock_guard<std::mutex> l(mu_);
  return revocation_version_;
}

Result<Authorizer::Installed> Authorizer::InstallRevocations(const std::string& text) {
  if (enrollment_ == nullptr || !enrollment_->enrolled()) {
    return Status(StatusCode::kFailedPrecondition,
                  "this agent has no fleet CA to check a revocation list against");
  }
  auto list = ParseRevocationList(text, "revocation list");
  if (!list.ok()) return list.status();
  if (Status v = VerifyRevocationList(*list, enrollment_->ca_pem()); !v.ok()) return v;
  // One install at a time: the version check, the file and the set agree.
  std::lock_guard<std::mutex> install(install_mu_);
  Installed r;
  r.version = revocation_version();
  if (list->version < r.version) {
    return Status(StatusCode::kFailedPrecondition,
                  "revocation list version " + std::to_string(list->version) +
                      " is older than the one this agent holds (version " +
                      std::to_string(r.version) + ")");
  }
  if (list->version == r.version) {
    std::lock_guard<std::mutex> l(mu_);
    if (list->serials != revoked_) {
      return Status(StatusCode::kFailedPrecondition, "a different revocation list with version " +
                                                         std::to_string(r.version) +
                                                         " is installed already");
    }
    r.count = revoked_.size();
    return r;
  }
  if (Status s = WriteFileAtomic(signed_path_, list->Text(), 0644); !s.ok()) return s;
  std::lock_guard<std::mutex> l(mu_);
  revoked_ = std::move(list->serials);
  revocation_version_ = list->version;
  r.installed = true;
  r.version = revocation_version_;
  r.count = revoked_.size();
  return r;
}

}  // namespace herd::agent

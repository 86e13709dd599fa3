#include "control/pki_store.h"

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

#include "common/defaults.h"
#include "common/file.h"
#include "control/revocation.h"

namespace herd::control {

bool ValidCertName(const std::string& s) {
  if (s.empty() || s.size() > 64 || s[0] == '.' || s[0] == '-') return false;
  for (char c : s) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_' && c != '.' &&
        c != '@') {
      return false;
    }
  }
  return s != "ca";
}

namespace {

// Writes a private key (0600, never over an existing file) and its certificate.
Result<IssuedFiles> WritePair(IssuedFiles f, const std::string& key, const std::string& cert) {
  if (Status s = pki::WriteNewFile(f.key_path, key, 0600); !s.ok()) return s;
  if (Status s = pki::WriteNewFile(f.cert_path, cert, 0644); !s.ok()) return s;
  auto info = pki::InspectCert(cert);
  if (!info.ok()) return info.status();
  f.info = *info;
  return f;
}

}  // namespace

std::string ResolvePkiDir(const std::string& explicit_dir) {
  return UserConfigPath(explicit_dir, "HERD_PKI_DIR", "pki");
}

Result<IssuedFiles> InitFleetCa(const std::string& dir, const std::string& name, int days) {
  if (days < 1) return Status::Invalid("--days must be at least 1");
  IssuedFiles f{dir + "/ca.key", dir + "/ca.crt", {}};
  struct stat st {};
  if (::stat(f.key_path.c_str(), &st) == 0) {
    return Status(StatusCode::kAlreadyExists,
                  "a fleet CA already exists in " + dir + "; refusing to replace " + f.key_path);
  }
  if (Status s = MakeDirs(dir); !s.ok()) return s;
  auto key = pki::GenerateKeyPem();
  if (!key.ok()) return key.status();
  auto cert = pki::SelfSignedCa(*key, name, days);
  if (!cert.ok()) return cert.status();
  return WritePair(std::move(f), *key, *cert);
}

namespace {

// Signs a new key pair for `spec` with the CA in `dir`; writes the key to
// `key_path` and the certificate to `cert_path` (in folder `out`).
Result<IssuedFiles> Issue(const std::string& dir, const pki::CertSpec& spec, const std::string& out,
                          const std::string& key_path, const std::string& cert_path) {
  auto ca = LoadFleetCa(dir);
  if (!ca.ok()) return ca.status();
  if (Status s = MakeDirs(out); !s.ok()) return s;
  IssuedFiles f{key_path, cert_path, {}};
  struct stat st {};
  if (::stat(f.key_path.c_str(), &st) == 0) {
    return Status(StatusCode::kAlreadyExists,
                  f.key_path + " already exists; refusing to replace it");
  }
  auto key = pki::GenerateKeyPem();
  if (!key.ok()) return key.status();
  auto pub = pki::PublicKeyPem(*key);
  if (!pub.ok()) return pub.status();
  auto cert = pki::IssueCert(ca->cert_pem, ca->key_pem, *pub, spec);
  if (!cert.ok()) return cert.status();
  return WritePair(std::move(f), *key, *cert);
}

}  // namespace

Result<FleetCa> LoadFleetCa(const std::string& dir) {
  auto cert = ReadFileToString(dir + "/ca.crt");
  if (!cert.ok()) return Status::NotFound("no fleet CA in " + dir + " (run 'herd ca init' first)");
  auto key = ReadFileToString(dir + "/ca.key");
  if (!key.ok()) {
    return Status::NotFound("no fleet CA key in " + dir +
                            " (signing agents needs the CA's key: run this where 'herd ca init' "
                            "ran, or pass --pki-dir)");
  }
  return FleetCa{std::move(*cert), std::move(*key)};
}

Result<pki::CertSpec> AgentCertSpec(const std::string& name, int days) {
  if (!ValidCertName(name)) {
    return Status::Invalid("invalid agent name '" + name +
                           "' (letters, digits, '-', '_', '.', '@'; not 'ca')");
  }
  if (days < 1) return Status::Invalid("--days must be at least 1");
  pki::CertSpec spec;
  spec.common_name = name;
  spec.dns_names = {name};
  spec.server = true;
  spec.days = days;
  return spec;
}

Result<IssuedFiles> IssueAgentCert(const std::string& dir, const std::string& name, int days,
                                   const std::string& out_dir) {
  auto spec = AgentCertSpec(name, days);
  if (!spec.ok()) return spec.status();
  const std::string out = out_dir.empty() ? dir + "/agents/" + name : out_dir;
  const TlsFiles files = TlsFilesIn(out);
  auto f = Issue(dir, *spec, out, files.key, files.cert);
  if (!f.ok()) return f;
  auto ca = ReadFileToString(dir + "/ca.crt");
  ::unlink(files.ca.c_str());
  if (Status s = pki::WriteNewFile(files.ca, *ca, 0644); !s.ok()) return s;
  return f;
}

Result<IssuedFiles> IssueClientCert(const std::string& dir, const std::string& name, pki::Role role,
                                    int days, const std::string& out_dir) {
  if (!ValidCertName(name)) {
    return Status::Invalid("invalid certificate name '" + name +
                           "' (letters, digits, '-', '_', '.', '@'; not 'ca')");
  }
  if (days < 1) return Status::Invalid("--days must be at least 1");
  pki::CertSpec spec;
  spec.common_name = name;
  spec.role = role;
  spec.days = days;
  const std::string out = out_dir.empty() ? dir : out_dir;
  return Issue(dir, spec, out, out + "/" + name + ".key", out + "/" + name + ".crt");
}

Result<std::vector<IdentityInfo>> ListIdentities(const std::string& dir) {
  DIR* d = ::opendir(dir.c_str());
  if (!d) return Status::NotFound("cannot read " + dir + ": " + std::strerror(errno));
  std::vector<std::string> names;
  while (dirent* e = ::readdir(d)) {
    const std::string f = e->d_name;
    if (f.size() > 4 && f.compare(f.size() - 4, 4, ".crt") == 0)
      names.push_back(f.substr(0, f.size() - 4));
  }
  ::closedir(d);
  std::sort(names.begin(), names.end(), [](const std::string& a, const std::string& b) {
    return (a == "ca") != (b == "ca") ? a == "ca" : a < b;
  });
  const auto revoked = LoadRevocations(dir).value_or(RevocationList()).serials;
  std::vector<IdentityInfo> out;
  for (const auto& n : names) {
    IdentityInfo id{n, dir + "/" + n + ".crt", {}, false};
    auto pem = ReadFileToString(id.cert_path);
    if (!pem.ok()) continue;
    auto info = pki::InspectCert(*pem);
    if (!info.ok()) return Status::Invalid(id.cert_path + ": " + info.status().message());
    id.info = *info;
    id.revoked = revoked.count(info->serial) > 0;
    out.push_back(std::move(id));
  }
  return out;
}

}  // namespace herd::control

#include "proto/rpc/identity.h"

#include <unistd.h>

#include "common/file.h"
#include "common/pki.h"

namespace herd::rpc {

Result<TransportOptions> LoadIdentity(const std::string& pki_dir, const std::string& name) {
  TransportOptions t;
  const std::string ca_path = pki_dir + "/ca.crt";
  const std::string cert_path = pki_dir + "/" + name + ".crt";
  const std::string key_path = pki_dir + "/" + name + ".key";
  auto ca = ReadFileToString(ca_path);
  auto cert = ReadFileToString(cert_path);
  auto key = ReadFileToString(key_path);
  for (const auto& [read, path] :
       {std::pair{&ca, &ca_path}, std::pair{&cert, &cert_path}, std::pair{&key, &key_path}}) {
    // A file that is there but cannot be read (permissions, a directory): say so.
    if (!read->ok() && ::access(path->c_str(), F_OK) == 0) return read->status();
  }
  if (!ca.ok() || !cert.ok() || !key.ok()) {
    return Status::NotFound("no identity '" + name + "' in " + pki_dir + " (need ca.crt, " + name +
                            ".crt, " + name + ".key: 'herd ca init', then 'herd cert issue " +
                            name + " --role ROLE'; --identity and --pki-dir choose another)");
  }
  if (auto c = pki::InspectCert(*ca); !c.ok()) {
    return Status::Invalid(ca_path + ": " + c.status().message());
  }
  if (auto c = pki::InspectCert(*cert); !c.ok()) {
    return Status::Invalid(cert_path + ": " + c.status().message());
  }
  auto key_pub = pki::PublicKeyPem(*key);
  if (!key_pub.ok()) return Status::Invalid(key_path + ": " + key_pub.status().message());
  auto cert_pub = pki::CertPublicKeyPem(*cert);
  if (!cert_pub.ok() || *cert_pub != *key_pub) {
    return Status::Invalid(key_path + " is not the key of " + cert_path);
  }
  t.ca_pem = std::move(*ca);
  t.cert_pem = std::move(*cert);
  t.key_pem = std::move(*key);
  return t;
}

}  // namespace herd::rpc

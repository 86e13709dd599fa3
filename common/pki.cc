#include "common/pki.h"

#include <fcntl.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <memory>

namespace herd::pki {
namespace {

template <typename T, void (*F)(T*)>
struct Deleter {
  void operator()(T* p) const { F(p); }
};
using Bio = std::unique_ptr<BIO, Deleter<BIO, BIO_free_all>>;
using Key = std::unique_ptr<EVP_PKEY, Deleter<EVP_PKEY, EVP_PKEY_free>>;
using Cert = std::unique_ptr<X509, Deleter<X509, X509_free>>;

Status SslError(const std::string& what) {
  char buf[256] = {};
  ERR_error_string_n(ERR_get_error(), buf, sizeof buf);
  return Status::Internal(what + ": " + buf);
}

Bio MemBio(const std::string& s) {
  return Bio(BIO_new_mem_buf(s.data(), static_cast<int>(s.size())));
}

std::string Drain(BIO* b) {
  char* data = nullptr;
  long n = BIO_get_mem_data(b, &data);
  return std::string(data, n > 0 ? n : 0);
}

Result<Key> LoadKey(const std::string& pem) {
  Bio b = MemBio(pem);
  Key k(PEM_read_bio_PrivateKey(b.get(), nullptr, nullptr, nullptr));
  if (!k) return SslError("cannot parse private key");
  return k;
}

Result<Key> LoadPublicKey(const std::string& pem) {
  Bio b = MemBio(pem);
  Key k(PEM_read_bio_PUBKEY(b.get(), nullptr, nullptr, nullptr));
  if (!k) return SslError("cannot parse public key");
  return k;
}

Result<Cert> LoadCert(const std::string& pem) {
  Bio b = MemBio(pem);
  Cert c(PEM_read_bio_X509(b.get(), nullptr, nullptr, nullptr));
  if (!c) return SslError("cannot parse certificate");
  return c;
}

std::string CertPem(X509* c) {
  Bio b(BIO_new(BIO_s_mem()));
  PEM_write_bio_X509(b.get(), c);
  return Drain(b.get());
}

Status AddExt(X509* cert, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
  if (!ext) return SslError("extension " + value);
  X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
  return Status::Ok();
}

// A new certificate with a random 128-bit serial, valid from now - 5 min.
Result<Cert> NewCert(EVP_PKEY* subject_key, int days) {
  Cert c(X509_new());
  X509_set_version(c.get(), 2);
  unsigned char serial[16];
  RAND_bytes(serial, sizeof serial);
  serial[0] &= 0x7f;
  BIGNUM* bn = BN_bin2bn(serial, sizeof serial, nullptr);
  BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(c.get()));
  BN_free(bn);
  // Valid from 5 minutes ago (clock skew); a negative `days` (tests) makes a
  // certificate that has already expired.
  X509_gmtime_adj(X509_getm_notBefore(c.get()), days < 0 ? (days - 1) * 86400L : -300);
  X509_gmtime_adj(X509_getm_notAfter(c.get()), static_cast<long>(days) * 86400);
  X509_set_pubkey(c.get(), subject_key);
  return c;
}

std::string NameEntry(X509_NAME* name, int nid) {
  int idx = X509_NAME_get_index_by_NID(name, nid, -1);
  if (idx < 0) return "";
  ASN1_STRING* s = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, idx));
  unsigned char* utf8 = nullptr;
  int n = ASN1_STRING_to_UTF8(&utf8, s);
  if (n < 0) return "";
  std::string out(reinterpret_cast<char*>(utf8), n);
  OPENSSL_free(utf8);
  return out;
}

std::time_t ToTime(const ASN1_TIME* t) {
  std::tm tm{};
  if (ASN1_TIME_to_tm(t, &tm) != 1) return 0;
  return timegm(&tm);
}

}  // namespace

const char* RoleName(Role r) {
  switch (r) {
    case Role::kViewer:
      return "viewer";
    case Role::kOperator:
      return "operator";
    case Role::kAdmin:
      return "admin";
  }
  return "viewer";
}

Result<Role> ParseRole(const std::string& name) {
  if (name == "viewer") return Role::kViewer;
  if (name == "operator") return Role::kOperator;
  if (name == "admin") return Role::kAdmin;
  return Status::Invalid("unknown role '" + name + "' (viewer, operator or admin)");
}

Result<std::string> GenerateKeyPem() {
  Key k(EVP_EC_gen("P-256"));
  if (!k) return SslError("cannot generate a P-256 key");
  Bio b(BIO_new(BIO_s_mem()));
  if (!PEM_write_bio_PrivateKey(b.get(), k.get(), nullptr, nullptr, 0, nullptr, nullptr)) {
    return SslError("cannot encode key");
  }
  return Drain(b.get());
}

Result<std::string> PublicKeyPem(const std::string& key_pem) {
  auto k = LoadKey(key_pem);
  if (!k.ok()) return k.status();
  Bio b(BIO_new(BIO_s_mem()));
  PEM_write_bio_PUBKEY(b.get(), k->get());
  return Drain(b.get());
}

namespace {

// A certificate for `key_pem` signed by itself: subject O=`org`, CN=`name`.
Result<std::string> SelfSigned(const std::string& key_pem, const char* org, const std::string& name,
                               int days,
                               std::initializer_list<std::pair<int, const char*>> extensions) {
  auto k = LoadKey(key_pem);
  if (!k.ok()) return k.status();
  auto c = NewCert(k->get(), days);
  if (!c.ok()) return c.status();
  X509_NAME* subject = X509_get_subject_name(c->get());
  X509_NAME_add_entry_by_NID(subject, NID_organizationName, MBSTRING_UTF8,
                             reinterpret_cast<const unsigned char*>(org), -1, -1, 0);
  X509_NAME_add_entry_by_NID(subject, NID_commonName, MBSTRING_UTF8,
                             reinterpret_cast<const unsigned char*>(name.c_str()), -1, -1, 0);
  X509_set_issuer_name(c->get(), subject);
  for (auto [nid, value] : extensions) {
    Status s = AddExt(c->get(), c->get(), nid, value);
    if (!s.ok()) return s;
  }
  if (!X509_sign(c->get(), k->get(), EVP_sha256())) return SslError("cannot sign certificate");
  return CertPem(c->get());
}

}  // namespace

Result<std::string> SelfSignedCa(const std::string& key_pem, const std::string& name, int days) {
  return SelfSigned(key_pem, "herd", name, days,
                    {{NID_basic_constraints, "critical,CA:TRUE"},
                     {NID_key_usage, "critical,keyCertSign,cRLSign"},
                     {NID_subject_key_identifier, "hash"}});
}

Result<std::string> SelfSignedCert(const std::string& key_pem, const std::string& name, int days) {
  return SelfSigned(key_pem, "herd (not enrolled)", name, days,
                    {{NID_basic_constraints, "critical,CA:FALSE"},
                     {NID_key_usage, "critical,digitalSignature"},
                     {NID_ext_key_usage, "serverAuth"}});
}

Result<std::string> CertPublicKeyPem(const std::string& cert_pem) {
  auto c = LoadCert(cert_pem);
  if (!c.ok()) return c.status();
  EVP_PKEY* pub = X509_get0_pubkey(c->get());
  if (!pub) return SslError("certificate has no public key");
  Bio b(BIO_new(BIO_s_mem()));
  PEM_write_bio_PUBKEY(b.get(), pub);
  return Drain(b.get());
}

Result<std::string> IssueCert(const std::string& ca_cert_pem, const std::string& ca_key_pem,
                              const std::string& public_key_pem, const CertSpec& spec) {
  if (spec.common_name.empty()) return Status::Invalid("a certificate needs a name");
  auto ca = LoadCert(ca_cert_pem);
  if (!ca.ok()) return ca.status();
  auto ca_key = LoadKey(ca_key_pem);
  if (!ca_key.ok()) return ca_key.status();
  auto pub = LoadPublicKey(public_key_pem);
  if (!pub.ok()) return pub.status();
  auto c = NewCert(pub->get(), spec.days);
  if (!c.ok()) return c.status();
  // Never valid past its CA: such a certificate would stop verifying then anyway.
  if (ASN1_TIME_compare(X509_get0_notAfter(c->get()), X509_get0_notAfter(ca->get())) > 0) {
    X509_set1_notAfter(c->get(), X509_get0_notAfter(ca->get()));
  }
  X509_NAME* subject = X509_get_subject_name(c->get());
  X509_NAME_add_entry_by_NID(subject, NID_organizationName, MBSTRING_UTF8,
                             reinterpret_cast<const unsigned char*>("herd"), -1, -1, 0);
  if (spec.role) {
    X509_NAME_add_entry_by_NID(subject, NID_organizationalUnitName, MBSTRING_UTF8,
                               reinterpret_cast<const unsigned char*>(RoleName(*spec.role)), -1, -1,
                               0);
  }
  X509_NAME_add_entry_by_NID(subject, NID_commonName, MBSTRING_UTF8,
                             reinterpret_cast<const unsigned char*>(spec.common_name.c_str()), -1,
                             -1, 0);
  X509_set_issuer_name(c->get(), X509_get_subject_name(ca->get()));
  std::vector<std::pair<int, std::string>> exts = {
      {NID_basic_constraints, "critical,CA:FALSE"},
      {NID_key_usage, "critical,digitalSignature"},
      {NID_ext_key_usage, spec.server ? "serverAuth" : "clientAuth"},
      {NID_authority_key_identifier, "keyid:always"}};
  if (!spec.dns_names.empty()) {
    std::string san;
    for (const auto& d : spec.dns_names) san += (san.empty() ? "DNS:" : ",DNS:") + d;
    exts.emplace_back(NID_subject_alt_name, san);
  }
  for (const auto& [nid, value] : exts) {
    Status s = AddExt(c->get(), ca->get(), nid, value);
    if (!s.ok()) return s;
  }
  if (!X509_sign(c->get(), ca_key->get(), EVP_sha256())) return SslError("cannot sign");
  return CertPem(c->get());
}

Result<CertInfo> InspectCert(const std::string& cert_pem) {
  auto c = LoadCert(cert_pem);
  if (!c.ok()) return c.status();
  CertInfo info;
  X509_NAME* subject = X509_get_subject_name(c->get());
  info.common_name = NameEntry(subject, NID_commonName);
  std::string ou = NameEntry(subject, NID_organizationalUnitName);
  if (!ou.empty()) {
    auto r = ParseRole(ou);
    if (r.ok()) info.role = *r;
  }
  BIGNUM* bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(c->get()), nullptr);
  char* hex = BN_bn2hex(bn);
  info.serial = NormaliseSerial(hex).value_or(hex);
  OPENSSL_free(hex);
  BN_free(bn);
  info.not_before = ToTime(X509_get0_notBefore(c->get()));
  info.not_after = ToTime(X509_get0_notAfter(c->get()));
  info.is_ca = X509_check_ca(c->get()) > 0;
  return info;
}

Status VerifyCert(const std::string& ca_cert_pem, const std::string& cert_pem) {
  auto ca = LoadCert(ca_cert_pem);
  if (!ca.ok()) return ca.status();
  auto c = LoadCert(cert_pem);
  if (!c.ok()) return c.status();
  std::unique_ptr<X509_STORE, Deleter<X509_STORE, X509_STORE_free>> store(X509_STORE_new());
  X509_STORE_add_cert(store.get(), ca->get());
  std::unique_ptr<X509_STORE_CTX, Deleter<X509_STORE_CTX, X509_STORE_CTX_free>> ctx(
      X509_STORE_CTX_new());
  X509_STORE_CTX_init(ctx.get(), store.get(), c->get(), nullptr);
  if (X509_verify_cert(ctx.get()) != 1) {
    return Status(StatusCode::kPermissionDenied,
                  std::string("certificate does not verify: ") +
                      X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx.get())));
  }
  return Status::Ok();
}

Result<std::string> Sign(const std::string& key_pem, std::string_view data) {
  auto key = LoadKey(key_pem);
  if (!key.ok()) return key.status();
  std::unique_ptr<EVP_MD_CTX, Deleter<EVP_MD_CTX, EVP_MD_CTX_free>> ctx(EVP_MD_CTX_new());
  size_t len = 0;
  if (EVP_DigestSignInit(ctx.get(), nullptr, EVP_sha256(), nullptr, key->get()) != 1 ||
      EVP_DigestSign(ctx.get(), nullptr, &len, reinterpret_cast<const unsigned char*>(data.data()),
                     data.size()) != 1) {
    return SslError("cannot sign");
  }
  std::string sig(len, '\0');
  if (EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(sig.data()), &len,
                     reinterpret_cast<const unsigned char*>(data.data()), data.size()) != 1) {
    return SslError("cannot sign");
  }
  sig.resize(len);
  return sig;
}

Status VerifySignature(const std::string& cert_pem, std::string_view data,
                       const std::string& signature) {
  auto cert = LoadCert(cert_pem);
  if (!cert.ok()) return cert.status();
  EVP_PKEY* key = X509_get0_pubkey(cert->get());
  std::unique_ptr<EVP_MD_CTX, Deleter<EVP_MD_CTX, EVP_MD_CTX_free>> ctx(EVP_MD_CTX_new());
  if (key == nullptr || EVP_DigestVerifyInit(ctx.get(), nullptr, EVP_sha256(), nullptr, key) != 1 ||
      EVP_DigestVerify(ctx.get(), reinterpret_cast<const unsigned char*>(signature.data()),
                       signature.size(), reinterpret_cast<const unsigned char*>(data.data()),
                       data.size()) != 1) {
    ERR_clear_error();
    return Status(StatusCode::kPermissionDenied, "signature does not verify");
  }
  return Status::Ok();
}

Result<std::string> NormaliseSerial(std::string_view text) {
  std::string hex;
  for (char c : text) {
    if (c == ':' || c == '-' || c == ' ' || c == '\t' || c == '\r') continue;
    if (!std::isxdigit(static_cast<unsigned char>(c))) {
      return Status::Invalid("'" + std::string(text.substr(0, 80)) +
                             "' is not a certificate serial (hex digits, ':' or '-' between)");
    }
    if (hex.empty() && c == '0') continue;  // leading zeros carry nothing
    hex += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  }
  if (hex.empty()) {
    const bool zero = text.find('0') != std::string_view::npos;
    if (!zero) return Status::Invalid("an empty certificate serial");
    hex = "0";
  }
  if (hex.size() > 64) return Status::Invalid("a certificate serial has at most 64 hex digits");
  return hex;
}

Status WriteNewFile(const std::string& path, const std::string& content, unsigned mode) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
  if (fd < 0) {
    if (errno == EEXIST) {
      return Status(StatusCode::kAlreadyExists, path + " already exists; refusing to overwrite it");
    }
    return Status::Internal("cannot create " + path + ": " + std::strerror(errno));
  }
  ::fchmod(fd, mode);  // independent of the umask
  size_t off = 0;
  while (off < content.size()) {
    ssize_t n = ::write(fd, content.data() + off, content.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      ::close(fd);
      ::unlink(path.c_str());
      return Status::Internal("cannot write " + path + ": " + std::strerror(errno));
    }
    off += n;
  }
  ::fsync(fd);
  ::close(fd);
  return Status::Ok();
}

}  // namespace herd::pki

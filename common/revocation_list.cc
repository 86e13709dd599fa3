#include "common/revocation_list.h"

#include <sstream>

#include "common/hash.h"
#include "common/pki.h"

namespace herd {
namespace {

constexpr char kMagic[] = "herd-revocations 1";

Status Bad(const std::string& source, int line, const std::string& what) {
  return Status::Invalid(source + ":" + std::to_string(line) + ": " + what);
}

// "KEY VALUE" with exactly that key; the value after one space.
bool Field(const std::string& line, const char* key, std::string* value) {
  const std::string prefix = std::string(key) + " ";
  if (line.rfind(prefix, 0) != 0) return false;
  *value = line.substr(prefix.size());
  return true;
}

bool Number(const std::string& text, uint64_t* out) {
  if (text.empty() || text.size() > 19 ||
      text.find_first_not_of("0123456789") != std::string::npos) {
    return false;
  }
  *out = std::stoull(text);
  return true;
}

std::string Body(uint64_t version, int64_t issued, const std::set<std::string>& serials) {
  std::string body = std::string(kMagic) + "\n";
  body += "version " + std::to_string(version) + "\n";
  body += "issued " + std::to_string(issued) + "\n";
  for (const auto& s : serials) body += "revoke " + s + "\n";
  return body;
}

}  // namespace

std::string RevocationList::Text() const {
  if (version == 0) return "";
  return body + "signature " + Base64Encode(signature) + "\n";
}

Result<RevocationList> ParseRevocationList(const std::string& text, const std::string& source) {
  if (text.size() > kMaxRevocationListBytes) {
    return Status::Invalid(source + ": a revocation list larger than " +
                           std::to_string(kMaxRevocationListBytes >> 20) + " MiB");
  }
  if (text.find('\0') != std::string::npos) return Status::Invalid(source + ": NUL byte");
  const auto sig_at = text.rfind("\nsignature ");
  if (text.empty() || text.back() != '\n' || sig_at == std::string::npos) {
    return Status::Invalid(source + ": not a signed herd revocation list (no signature line)");
  }
  RevocationList list;
  list.body = text.substr(0, sig_at + 1);
  const std::string sig_b64 = text.substr(sig_at + 11, text.size() - sig_at - 12);
  auto sig = Base64Decode(sig_b64);
  if (!sig || sig->empty()) return Status::Invalid(source + ": the signature is not base64");
  list.signature = std::move(*sig);
  std::istringstream in(list.body);
  std::string line, value;
  int n = 0;
  auto next = [&] {
    ++n;
    return static_cast<bool>(std::getline(in, line));
  };
  if (!next() || line != kMagic) return Bad(source, n, "expected '" + std::string(kMagic) + "'");
  if (!next() || !Field(line, "version", &value) || !Number(value, &list.version) ||
      list.version == 0) {
    return Bad(source, n, "expected 'version N' (N >= 1)");
  }
  uint64_t issued = 0;
  if (!next() || !Field(line, "issued", &value) || !Number(value, &issued)) {
    return Bad(source, n, "expected 'issued UNIX_TIME'");
  }
  list.issued_unix = static_cast<int64_t>(issued);
  std::string last;
  while (next()) {
    if (!Field(line, "revoke", &value)) return Bad(source, n, "expected 'revoke SERIAL'");
    auto serial = pki::NormaliseSerial(value);
    // The signed form is the normalised one, sorted: anything else was not
    // written by herd.
    if (!serial.ok() || *serial != value || (!last.empty() && value <= last)) {
      return Bad(source, n, "'" + value.substr(0, 80) + "' is not a sorted, normalised serial");
    }
    if (list.serials.size() >= kMaxRevokedSerials) {
      return Bad(source, n, "more than " + std::to_string(kMaxRevokedSerials) + " serials");
    }
    list.serials.insert(value);
    last = value;
  }
  return list;
}

Result<RevocationList> SignRevocationList(uint64_t version, const std::set<std::string>& serials,
                                          int64_t issued_unix, const std::string& ca_key_pem) {
  if (version == 0) return Status::Invalid("a revocation list's version starts at 1");
  RevocationList list;
  list.version = version;
  list.issued_unix = issued_unix;
  for (const auto& s : serials) {
    auto normal = pki::NormaliseSerial(s);
    if (!normal.ok()) return normal.status();
    list.serials.insert(*normal);
  }
  list.body = Body(version, issued_unix, list.serials);
  auto sig = pki::Sign(ca_key_pem, list.body);
  if (!sig.ok()) return sig.status();
  list.signature = std::move(*sig);
  return list;
}

Status VerifyRevocationList(const RevocationList& list, const std::string& ca_cert_pem) {
  Status s = pki::VerifySignature(ca_cert_pem, list.body, list.signature);
  if (!s.ok()) {
    return Status(StatusCode::kPermissionDenied,
                  "the revocation list is not signed by this fleet's CA");
  }
  return Status::Ok();
}

}  // namespace herd

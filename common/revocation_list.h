// RevocationList: the fleet's list of revoked client certificates, as a
// document signed by the fleet CA with a version that only grows. The
// operator's PKI folder makes and signs it (`herd cert revoke`); agents take
// a list from any caller, at enrolment, or (later) from peers, but only one
// that verifies against their fleet CA and is newer than the one they have.
//
// The document is text, signed over every byte before its last line:
//   herd-revocations 1
//   version 7
//   issued 1764800000
//   revoke 5D5F3560                 (normalised serials, sorted, one per line)
//   signature MEUCIQ...             (base64 of the CA's ECDSA-SHA256 signature)
// Plain values; the functions are stateless and safe from any thread.
#pragma once

#include <cstdint>
#include <set>
#include <string>

#include "common/status.h"

namespace herd {

struct RevocationList {
  uint64_t version = 0;  // 0: no list yet
  int64_t issued_unix = 0;
  std::set<std::string> serials;  // normalised (pki::NormaliseSerial)
  std::string body;               // the signed bytes
  std::string signature;          // raw DER
  // The whole document, as stored and sent ("" when version is 0).
  std::string Text() const;
};

// At most this many serials and bytes in a list a device accepts.
inline constexpr size_t kMaxRevokedSerials = 100'000;
inline constexpr size_t kMaxRevocationListBytes = 8 << 20;

// Reads a document's form; whether it is signed by the CA is Verify's job.
// Errors name `source` and the line.
Result<RevocationList> ParseRevocationList(const std::string& text, const std::string& source);

// A new list of `serials` at `version`, signed with the fleet CA's key.
Result<RevocationList> SignRevocationList(uint64_t version, const std::set<std::string>& serials,
                                          int64_t issued_unix, const std::string& ca_key_pem);

// Ok when `list` is signed by the CA of `ca_cert_pem`; kPermissionDenied
// otherwise.
Status VerifyRevocationList(const RevocationList& list, const std::string& ca_cert_pem);

}  // namespace herd

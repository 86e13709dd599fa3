// App signing keys and signatures in minisign's format (Ed25519), so that a
// publisher may sign with Debian's `minisign` and herd verifies it, and
// minisign verifies what herd signs.
//
//   public key   "untrusted comment: ...\n" + base64("Ed" || key id (8) || public key (32))
//   signature    "untrusted comment: ...\n" + base64("ED" || key id || Ed25519(BLAKE2b-512(m)))
//                "trusted comment: TEXT\n" + base64(Ed25519(signature || TEXT))
//                (legacy "Ed" signs m itself; both are verified)
//   secret key   herd's own file, not minisign's (which needs scrypt and BLAKE2b-256):
//                "untrusted comment: herd app secret key ID\n" + base64("Ed" || key id ||
//                Ed25519 seed (32) || public key (32))
//
// Pure functions over text; thread-safe.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/status.h"

namespace herd::app {

using KeyId = std::array<uint8_t, 8>;

struct PublicKey {
  KeyId id{};
  std::array<uint8_t, 32> key{};
};

struct SecretKey {
  KeyId id{};
  std::array<uint8_t, 32> seed{};
  PublicKey pub;
};

// The key id as minisign prints it: 16 upper-case hex digits.
std::string KeyIdHex(const KeyId& id);

// A fresh key pair with a random id.
Result<SecretKey> GenerateKey();

// Key files: the text, and back. Parse errors name `source`.
std::string FormatPublicKey(const PublicKey& k);
// The key's base64 line alone (what configs and catalogue indexes hold).
std::string PublicKeyLine(const PublicKey& k);
std::string FormatSecretKey(const SecretKey& k);
Result<PublicKey> ParsePublicKey(std::string_view text, const std::string& source);
Result<SecretKey> ParseSecretKey(std::string_view text, const std::string& source);

// A prehashed ("ED") signature of `message`, as a .minisig file's text.
Result<std::string> Sign(const SecretKey& k, std::string_view message,
                         const std::string& trusted_comment);

struct SignatureInfo {
  KeyId key_id{};
  std::string trusted_comment;
};
// The key id a signature claims (no verification), or an error naming what
// is malformed.
Result<SignatureInfo> ReadSignature(std::string_view signature);
// Ok when `signature` is `k`'s over `message` (both of its signatures);
// else kPermissionDenied "bad signature" or kInvalidArgument for a malformed one.
Result<SignatureInfo> Verify(const PublicKey& k, std::string_view message,
                             std::string_view signature);

}  // namespace herd::app

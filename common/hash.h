// SHA-256 and base64 helpers (OpenSSL EVP). Sha256 is incremental; not thread-safe per
// instance, independent instances may be used from any thread.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace herd {

class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;

  void Update(const void* data, size_t len);
  void Update(std::string_view s) { Update(s.data(), s.size()); }
  // Lower-case hex digest. Call once.
  std::string HexDigest();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

std::string Sha256Hex(std::string_view data);
// Whether `s` is a SHA-256 digest as herd writes them: 64 lower-case hex digits.
bool IsSha256Hex(std::string_view s);

// Standard base64 (RFC 4648, with padding), and back: nullopt for text that
// is not base64.
std::string Base64Encode(std::string_view data);
std::optional<std::string> Base64Decode(std::string_view text);

}  // namespace herd

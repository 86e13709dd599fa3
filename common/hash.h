// SHA-256 helpers (OpenSSL EVP). Sha256 is incremental; not thread-safe per
// instance, independent instances may be used from any thread.
#pragma once

#include <memory>
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

}  // namespace herd

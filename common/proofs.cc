#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <cstdlib>
#include <cstring>

#include "common/pki.h"

// The join-token proofs of enrolment and the randomness behind them.
namespace herd::pki {

std::string RandomBytes(size_t n) {
  std::string out(n, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(out.data()), static_cast<int>(n)) != 1) {
    std::abort();  // no randomness: nothing secure can be made
  }
  return out;
}

std::string RandomToken() {
  static const char kAlphabet[] = "abcdefghijklmnopqrstuvwxyz234567";
  const std::string raw = RandomBytes(20);
  std::string out;
  uint32_t acc = 0;
  int bits = 0;
  for (unsigned char byte : raw) {
    acc = (acc << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      out += kAlphabet[(acc >> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  return out;
}

std::string HmacSha256(const std::string& key, const std::string& msg) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(msg.data()), msg.size(), out, &len);
  return std::string(reinterpret_cast<char*>(out), len);
}

std::string Framed(std::initializer_list<std::string_view> fields) {
  std::string out;
  for (auto f : fields) {
    const uint32_t n = static_cast<uint32_t>(f.size());
    const char len[4] = {static_cast<char>(n >> 24), static_cast<char>(n >> 16),
                         static_cast<char>(n >> 8), static_cast<char>(n)};
    out.append(len, 4);
    out.append(f.data(), f.size());
  }
  return out;
}

std::string EnrolClientProof(const std::string& token, const std::string& client_nonce) {
  return HmacSha256(token, Framed({"herd-enroll-v1 client", client_nonce}));
}

std::string EnrolAgentProof(const std::string& token, const std::string& client_nonce,
                            const std::string& agent_nonce, const std::string& public_key_pem) {
  return HmacSha256(token,
                    Framed({"herd-enroll-v1 agent", client_nonce, agent_nonce, public_key_pem}));
}

std::string EnrolCompleteProof(const std::string& token, const std::string& agent_nonce,
                               const std::string& cert_pem, const std::string& ca_pem) {
  return HmacSha256(token, Framed({"herd-enroll-v1 complete", agent_nonce, cert_pem, ca_pem}));
}

bool ConstantTimeEquals(const std::string& a, const std::string& b) {
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

}  // namespace herd::pki
